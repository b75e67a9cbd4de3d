"""The conversation's own settings in a small modal: system prompt, temperature, top-p, max tokens.

Dismisses with the new ``ConversationSettings`` (Ctrl+S) or ``None`` (Esc); a bad value is shown
as one line naming the field and the form stays open. Parsing is ``core/store/notices.py``'s;
storing them (``HistoryStore.set_settings``) is the main screen's; a blank field means the
``[chat]`` config's value, shown as the field's placeholder.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static, TextArea

from coder_tui.core.config.loader import ChatSettings
from coder_tui.core.store.notices import parse_settings
from coder_tui.core.store.schema import ConversationSettings


def _shown(value: float | int | None) -> str:
    return "" if value is None else f"{value:g}"


class ChatSettingsScreen(ModalScreen[ConversationSettings | None]):
    """Edit one conversation's settings; the config's values are the placeholders."""

    DEFAULT_CSS = """
    ChatSettingsScreen { align: center middle; }
    ChatSettingsScreen > Vertical {
        width: 90%; max-width: 90; height: auto; max-height: 90%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    ChatSettingsScreen TextArea { height: 6; }
    ChatSettingsScreen Horizontal { height: auto; }
    ChatSettingsScreen Horizontal > Vertical { width: 1fr; height: auto; }
    ChatSettingsScreen #error { color: $error; height: auto; }
    ChatSettingsScreen .keys { color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("escape", "dismiss(None)", "Cancel"),
    ]

    def __init__(self, current: ConversationSettings, defaults: ChatSettings) -> None:
        super().__init__()
        self.current = current
        self.defaults = defaults

    def compose(self) -> ComposeResult:
        cur, default = self.current, self.defaults
        with Vertical():
            yield Static("this conversation's settings (blank: the config's)", classes="keys")
            yield Label("system prompt")
            yield TextArea(cur.system_prompt or "", id="system", soft_wrap=True)
            with Horizontal():
                for field, label, value, placeholder in (
                    ("temperature", "temperature", cur.temperature, default.temperature),
                    ("top_p", "top-p", cur.top_p, None),
                    ("max_tokens", "max tokens", cur.max_tokens, default.max_tokens),
                ):
                    with Vertical():
                        yield Label(label)
                        yield Input(
                            _shown(value),
                            placeholder=_shown(placeholder) or "server's",
                            id=field,
                        )
            yield Static("", id="error", markup=False)
            yield Static("Ctrl+S save · Esc cancel", classes="keys")

    def on_mount(self) -> None:
        self.query_one("#system", TextArea).focus()

    def _value(self, field: str) -> str:
        return self.query_one(f"#{field}", Input).value

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_save()

    def action_save(self) -> None:
        try:
            settings = parse_settings(
                self.query_one("#system", TextArea).text,
                self._value("temperature"),
                self._value("top_p"),
                self._value("max_tokens"),
            )
        except ValueError as exc:
            self.query_one("#error", Static).update(str(exc))
            return
        self.dismiss(settings)
