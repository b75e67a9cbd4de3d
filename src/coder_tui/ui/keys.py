"""The app's keys as people read them: groups (server, chat, views, global), order and names.

One table for the key footer (``ui/widgets/key_footer.py``) and the help screen
(``ui/screens/help.py``): which group an action belongs to, which keys matter most when the
footer is narrow, and how a key is written (``F2``, ``Ctrl+B``, ``Esc``: the help and the footer
write every key so). Also the app's own keys (``APP_BINDINGS``, the F keys, Ctrl+Q...); a
screen's keys are its own, handed to the help and the footer with the screen.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding
from textual.keys import format_key

SERVER, CHAT, VIEWS, GLOBAL, SCREEN = "Server", "Chat", "Views", "Global", "This screen"

GROUP_OF_ACTION: dict[str, str] = {
    "start": SERVER,
    "stop": SERVER,
    "restart": SERVER,
    "profiles": SERVER,
    "compare": SERVER,
    "bench": SERVER,
    "cancel": CHAT,
    "copy_code": CHAT,
    "conversations": CHAT,
    "retry": CHAT,
    "new_conversation": CHAT,
    "toggle_help": VIEWS,
    "dashboard": VIEWS,
    "connect": VIEWS,
    "command_palette": VIEWS,
    "quit": GLOBAL,
    "suspend_process": GLOBAL,
}
"""The group of each app or main-screen action; any other screen's keys are ``SCREEN``."""

GROUP_ORDER = (SCREEN, SERVER, CHAT, VIEWS, GLOBAL)

ACTION_HELP: dict[str, str] = {
    "cancel": "cancel the reply on its way",
    "copy_code": "copy the last code block of the last reply",
    "conversations": "conversations: open, rename, delete, export",
    "retry": "ask again for the last prompt",
    "new_conversation": "start a new conversation",
    "command_palette": "every command by name",
    "suspend_process": "suspend to the shell (fg resumes; the server keeps running)",
}
"""What the help says for keys whose binding (a screen's) has only a short footer label."""


FOOTER_RANK: dict[str, int] = {
    "toggle_help": 0,
    "start": 1,
    "stop": 2,
    "restart": 4,
    "dashboard": 3,
    "profiles": 5,
    "compare": 6,
    "bench": 7,
    "cancel": 20,
    "copy_code": 21,
    "conversations": 22,
    "connect": 30,
    "quit": 31,
    "command_palette": 40,
}
"""Which keys the footer keeps when it is narrow (lower first); it shows them in this order.
A modal screen's own keys (Back, Export...) come right after F1: they are what it is for."""

EMPTY_CHAT_HINT = """Nothing here yet. To begin:
  · type a prompt below; Enter sends it (Ctrl+J: a new line)
  · ● stopped above? F2 starts the server; F6 picks a profile
  · F1 lists the keys, Ctrl+P the commands, Ctrl+L earlier chats,
    F8 how to point a coding agent at this server"""
"""What an empty chat shows (``ui/screens/main.py``)."""

APP_BINDINGS: tuple[Binding, ...] = (
    # Function keys win over the focused widget (TextArea takes F6/F7 for selection), so they
    # work while typing; the letters only when the prompt does not have focus.
    Binding("f1", "toggle_help", "Help", priority=True, tooltip="this list of keys"),
    Binding("f2", "start", "Start", priority=True, tooltip="start the server (this profile)"),
    Binding("f3", "stop", "Stop", priority=True, tooltip="stop the server"),
    Binding("f4", "dashboard", "Dash", priority=True, tooltip="dashboard: GPU, CPU, server"),
    Binding("f5", "restart", "Restart", priority=True, tooltip="stop, then start again"),
    Binding("f6", "profiles", "Profiles", priority=True, tooltip="profiles: pick one to swap"),
    Binding("f7", "compare", "Compare", priority=True, tooltip="compare two profiles"),
    Binding("f8", "connect", "Connect", priority=True, tooltip="connect a coding agent"),
    Binding("f9", "bench", "Bench", priority=True, tooltip="benchmark profiles"),
    Binding("question_mark", "toggle_help", "Help", show=False, tooltip="this list of keys"),
    Binding("s", "start", "Start", show=False),
    Binding("x", "stop", "Stop", show=False),
    Binding("r", "restart", "Restart", show=False),
    Binding("ctrl+q,q", "quit", "Quit", tooltip="quit (stops the server)"),
    # Ctrl+Z as in a shell (Textual turns off the terminal's own): stop, and resume on `fg`.
    # The prompt keeps it for undo; the server, a process of its own, keeps running.
    Binding("ctrl+z", "suspend_process", "Suspend", show=False),
)
"""The app's own keys, on every screen (``CoderApp.BINDINGS``); a screen adds its own."""

_NAMES = {
    "escape": "Esc",
    "enter": "Enter",
    "question_mark": "?",
    "tab": "Tab",
    "space": "Space",
    "delete": "Del",
}


def key_name(key: str) -> str:
    """``f2`` → ``F2``, ``ctrl+b`` → ``Ctrl+B``, ``escape`` → ``Esc``, ``question_mark`` → ``?``,
    ``slash`` → ``/``: the help writes them so, and the footer (``CoderApp.get_key_display``)."""
    parts = key.split("+")
    mods = [p.capitalize() for p in parts[:-1]]
    last = parts[-1]
    if last in _NAMES:
        name = _NAMES[last]
    elif len(punct := format_key(last)) == 1 and punct.isascii() and not punct.isalnum():
        name = punct  # slash → /, plus → +
    elif len(last) <= 3 and last[:1] == "f" and last[1:].isdigit():
        name = last.upper()
    elif len(last) == 1:
        name = last.upper() if mods else last
    else:
        name = last.capitalize()
    return "+".join([*mods, name])


@dataclass(frozen=True)
class KeyLine:
    """One action and every key that runs it, as the help screen lists it."""

    group: str
    keys: tuple[str, ...]
    """As people read them: ``("F2", "s")``."""
    action: str
    description: str


def group_of(action: str, *, on_modal: bool, on_chat: bool = False) -> str:
    """The help group of ``action``; a modal screen's own keys are ``SCREEN``, and so are any
    screen's keys the table does not know (the chat screen's: ``CHAT``)."""
    bare = action.split("(")[0].removeprefix("app.").removeprefix("screen.")
    if bare in GROUP_OF_ACTION and not (on_modal and bare not in _APP_ACTIONS):
        return GROUP_OF_ACTION[bare]
    return CHAT if on_chat else SCREEN


_APP_ACTIONS = {
    "start",
    "stop",
    "restart",
    "profiles",
    "compare",
    "bench",
    "toggle_help",
    "dashboard",
    "connect",
    "command_palette",
    "quit",
    "suspend_process",
}
