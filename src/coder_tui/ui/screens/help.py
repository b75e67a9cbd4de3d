"""Help (F1 or ``?``): the app's keys for the screen below first, then the global ones.

Lists what the screen it opens over can do, grouped (this screen's own keys, server, chat,
views, global), each action once with every key that runs it. Built from the live bindings (the
screen's and the App's), so a key added anywhere shows here; the editor keys that the prompt
inherits from Textual's ``TextArea`` are left out (they are the usual ones). Esc, F1, ``?`` or
``q`` close it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from coder_tui.ui.keys import ACTION_HELP, CHAT, GROUP_ORDER, KeyLine, group_of, key_name

_TYPED_KEYS = (
    KeyLine(CHAT, ("Enter",), "send", "send the prompt"),
    KeyLine(CHAT, ("Ctrl+J", "Shift+Enter"), "newline", "new line in the prompt"),
)
"""The prompt's own keys (read in its key handler, not bindings)."""


def key_lines(app: App[Any], screen: Screen[Any]) -> list[KeyLine]:
    """Every action of ``screen`` and ``app`` that a key runs, grouped and in help order."""
    on_modal = isinstance(screen, ModalScreen)
    on_chat = getattr(app, "main", None) is screen  # the chat screen's own keys are chat keys
    merged: dict[tuple[str, str], list[str]] = {}
    described: dict[tuple[str, str], str] = {}
    for key, active in screen.active_bindings.items():
        if active.node is not app and active.node is not screen:
            continue  # the focused widget's keys: for the prompt, Textual's editor keys
        binding: Binding = active.binding
        if "focus_" in binding.action:
            continue
        group = group_of(binding.action, on_modal=on_modal, on_chat=on_chat)
        ident = (group, binding.action)
        merged.setdefault(ident, []).append(key_name(key))
        bare = binding.action.split("(")[0].removeprefix("app.")
        text = ACTION_HELP.get(bare) or binding.tooltip or _lower_first(binding.description) or bare
        described.setdefault(ident, text)
    lines = [
        KeyLine(group, tuple(keys), action, described[(group, action)])
        for (group, action), keys in merged.items()
    ]
    # Keys a widget reads itself: the chat prompt's, or those a screen declares (compare's
    # Enter runs); no other screen has the chat's prompt.
    lines.extend(_TYPED_KEYS if on_chat else getattr(screen, "TYPED_KEYS", ()))
    order = {name: i for i, name in enumerate(GROUP_ORDER)}
    return sorted(lines, key=lambda line: (order[line.group], _fkey_first(line.keys)))


def _lower_first(text: str) -> str:
    """``Reply whole`` → ``reply whole`` (help lines read as phrases); ``GPU`` stays."""
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def _fkey_first(keys: tuple[str, ...]) -> tuple[int, str]:
    """F-keys in number order, then the rest as they came."""
    first = keys[0]
    if first.startswith("F") and first[1:].isdigit():
        return (0, f"{int(first[1:]):02d}")
    return (1, "")


def render_lines(lines: Iterable[KeyLine]) -> Content:
    """The help text: a heading per group, then ``keys  what it does``."""
    lines = list(lines)
    width = min(22, max((len(" / ".join(line.keys)) for line in lines), default=4))
    parts: list[str | tuple[str, str] | Content] = []
    group = None
    for line in lines:
        if line.group != group:
            parts.append("\n" if group is not None else "")
            group = line.group
            parts.append((group, "bold $accent"))
        keys = " / ".join(line.keys)
        parts.append("\n  ")
        parts.append((f"{keys:<{width}}", "bold"))
        parts.append(f" {line.description}")
    return Content.assemble(*parts)


class HelpScreen(ModalScreen[None]):
    """The keys of the screen it was opened over, then the global ones."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90%; max-width: 76; height: auto; max-height: 100%;
        border: round $accent; background: $surface; padding: 0 1;
        border-subtitle-color: $text-muted;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f1,question_mark,q", "close", "Close", priority=True),
    ]

    def __init__(self, lines: list[KeyLine], title: str) -> None:
        super().__init__()
        self.lines = lines
        self.title_text = title

    @classmethod
    def over(cls, app: App[Any], screen: Screen[Any]) -> HelpScreen:
        """The help for ``screen`` (the one showing when F1 was pressed)."""
        title = screen.__class__.__name__.removesuffix("Screen").lower() or "main"
        return cls(key_lines(app, screen), "chat" if title == "main" else title)

    def compose(self) -> ComposeResult:
        box = VerticalScroll()
        box.border_title = f"Keys: {self.title_text}"
        box.border_subtitle = "Esc / F1 / ? close · Ctrl+P: commands by name"
        with box:
            yield Static(render_lines(self.lines), id="help-text")

    def action_close(self) -> None:
        self.dismiss(None)

    def text(self) -> str:
        """The help as plain text (tests read it)."""
        return render_lines(self.lines).plain
