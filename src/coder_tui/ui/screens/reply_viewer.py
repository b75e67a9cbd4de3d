"""A reply opened whole (Ctrl+T on the chat): the full stored text, however long, in a viewer.

The chat draws a huge reply folded (``core/chat/fold.py``); this screen shows it all in a
read-only ``TextArea``, which draws only the rows on screen, so opening a 10 MB reply costs its
lines once, not a Markdown render. Select and copy from it as from the prompt; Esc closes it.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen
from textual.widgets import TextArea

from coder_tui.ui.widgets.key_footer import KeyFooter


class ReplyViewer(ModalScreen[None]):
    """The whole text of one reply (already sanitised when stored)."""

    DEFAULT_CSS = """
    ReplyViewer { background: $background 60%; }
    ReplyViewer > TextArea { margin: 1 2; border: round $accent; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("ctrl+b", "copy_all", "Copy all"),
    ]

    def __init__(self, text: str, title: str) -> None:
        super().__init__()
        self.text = text
        self.title_text = title

    def compose(self) -> ComposeResult:
        area = TextArea(self.text, read_only=True, soft_wrap=False, show_line_numbers=True)
        area.border_title = self.title_text
        yield area
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()

    def action_close(self) -> None:
        self.dismiss(None)

    def action_copy_all(self) -> None:
        self.app.copy_to_clipboard(self.text)
        self.notify(f"copied {self.text.count(chr(10)) + 1:,} line(s)")
