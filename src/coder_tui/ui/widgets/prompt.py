"""The multi-line prompt: Enter sends, Shift+Enter or Ctrl+J starts a new line; its cursor blinks
only while nothing holds it still (``hold_blink``)."""

from __future__ import annotations

from dataclasses import dataclass

from textual import events
from textual.message import Message
from textual.widgets import TextArea


class PromptInput(TextArea):
    """A TextArea whose Enter posts ``Submitted`` instead of inserting a newline."""

    DEFAULT_CSS = """
    PromptInput { height: auto; min-height: 3; max-height: 10; border: round $primary; }
    PromptInput:focus { border: round $accent; }
    """

    @dataclass
    class Submitted(Message):
        """The user pressed Enter on a non-empty prompt."""

        prompt_input: PromptInput
        text: str

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, soft_wrap=True, show_line_numbers=False, tab_behavior="focus")
        self.border_title = "prompt  (Enter send · Ctrl+J newline · Esc cancel)"
        self._blink_held: set[str] = set()

    def hold_blink(self, reason: str, held: bool = True) -> None:
        """The cursor blinks unless some ``reason`` holds it: it cannot be seen (``hidden``), or
        each blink would cost what matters (no CPU core is idle: ``cpu``, ``reply``)."""
        if held:
            self._blink_held.add(reason)
        else:
            self._blink_held.discard(reason)
        blink = not self._blink_held
        if self.cursor_blink != blink:
            self.cursor_blink = blink

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            text = self.text
            if text.strip():
                self.post_message(self.Submitted(self, text))
                self.clear()
            return
        if event.key in ("shift+enter", "ctrl+j"):
            event.stop()
            event.prevent_default()
            self.insert("\n")
            return
        await super()._on_key(event)
