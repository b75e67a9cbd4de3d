"""The command palette's app commands (Ctrl+P): every key's action by name, and one per profile.

``app_commands`` yields Textual ``SystemCommand``s for the App's ``get_system_commands``: server
start/stop/restart, a swap to each profile (asked to confirm, as from F6), compare, a "Compare A
vs B" for each ordered pair of profiles (compare mode opens with both selected; Enter in its
prompt runs; found by typing, not listed in the unfiltered palette), bench, dashboard, connect,
help, and the chat's copy code block, new conversation, conversations and export. Each calls an
action the App or the chat screen already has, so a command does exactly what its key does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import permutations
from typing import Any, Protocol

from textual.app import App, SystemCommand
from textual.screen import Screen

from coder_tui.core.atomic import write_text_atomic
from coder_tui.core.store.history import HistoryStore
from coder_tui.core.store.schema import Conversation
from coder_tui.ui.screens.conversations import export_path


class PaletteApp(Protocol):
    """What the commands call on the App."""

    def action_start(self) -> None: ...
    def action_stop(self) -> None: ...
    def action_restart(self) -> None: ...
    def action_profiles(self) -> None: ...
    def action_compare(self, a: str = "", b: str = "") -> None: ...
    def action_bench(self) -> None: ...
    def action_dashboard(self) -> None: ...
    def action_connect(self) -> None: ...
    def action_toggle_help(self) -> None: ...


def app_commands(
    app: PaletteApp,
    screen: Screen[Any],
    *,
    profile_names: Iterable[str],
    swap_to: Callable[[str], None] | None,
    chat: Screen[Any] | None,
    export: Callable[[], None] | None = None,
) -> Iterable[SystemCommand]:
    """The app's commands, for the palette opened over ``screen``; ``swap_to(name)`` asks to swap
    (``None``: the server is not coder-tui's); ``chat`` is the chat screen (its actions) and
    ``export`` writes its open conversation."""
    names = list(profile_names)
    yield SystemCommand(
        "Start server", "Start llama-server with the current profile (F2)", app.action_start
    )
    yield SystemCommand("Stop server", "Stop llama-server (F3)", app.action_stop)
    yield SystemCommand(
        "Restart server", "Stop and start llama-server again (F5)", app.action_restart
    )
    if swap_to is not None:
        for name in names:
            yield SystemCommand(
                f"Swap to profile {name}",
                f"Restart the server with profile {name} (asks first; F6 lists them)",
                _bind(swap_to, name),
            )
    yield SystemCommand(
        "Compare profiles",
        "Run one prompt on profile A and B (F7); type 'compare A vs B' to pick both",
        app.action_compare,
    )
    if swap_to is not None:
        for a, b in permutations(names, 2):
            yield SystemCommand(
                f"Compare {a} vs {b}",
                f"Open compare with A = {a} and B = {b}; Enter in its prompt runs",
                _bind2(app.action_compare, a, b),
                discover=False,  # n×(n-1) of them: found by typing, not listed
            )
    yield SystemCommand(
        "Bench", "Benchmark profiles through this app's server (F9)", app.action_bench
    )
    yield SystemCommand(
        "Open dashboard", "GPU, CPU, memory and server graphs (F4)", app.action_dashboard
    )
    yield SystemCommand(
        "Connect an agent", "Base URLs and env lines for coding agents (F8)", app.action_connect
    )
    yield SystemCommand(
        "Help: keys", "The keys of this screen and the global ones (F1, ?)", app.action_toggle_help
    )
    if chat is not None and screen is chat:
        for title, help_text, action in (
            ("Copy code block", "Copy the last reply's last code block (Ctrl+B)", "copy_code"),
            ("New conversation", "Start an empty conversation (Ctrl+N)", "new_conversation"),
            ("Conversations", "Open, rename, delete or export chats (Ctrl+L)", "conversations"),
        ):
            yield SystemCommand(title, help_text, getattr(chat, f"action_{action}"))
        if export is not None:
            yield SystemCommand(
                "Export conversation", "Write the open chat as Markdown (exports folder)", export
            )


def export_conversation(
    app: App[Any], store: HistoryStore, conversation: Conversation | None
) -> None:
    """Write ``conversation`` as Markdown where the conversations list (``e``) writes it."""
    if conversation is None:
        app.notify("no conversation open: nothing to export")
        return
    path = export_path(conversation.title, conversation.id)
    write_text_atomic(path, store.export_markdown(conversation.id))
    app.notify(f"exported to {path}")


def _bind(call: Callable[[str], None], name: str) -> Callable[[], None]:
    return lambda: call(name)


def _bind2(call: Callable[[str, str], None], a: str, b: str) -> Callable[[], None]:
    return lambda: call(a, b)
