"""One chat message: who said it, its Markdown body, and the numbers under a reply.

The body is a ``ReplyMarkdown`` for every message, prompt or reply, from history or streamed,
drawn from ``core/chat/fold.py``'s text: huge code blocks and replies folded (Ctrl+T opens one
whole).
While a reply streams, ``ReplyStream`` mounts an open code fence right after the body.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.visual import visualize
from textual.widgets import Static

from coder_tui.core.chat.fold import fold_reply
from coder_tui.ui.widgets.reply_markdown import ReplyMarkdown
from coder_tui.ui.widgets.row_reserve import quiet_virtual_size


class MessageLine(Static):
    """The name line above a message, or the numbers below a reply.

    It never scrolls, so its ``virtual_size`` asks for no layout. A plain ``Static`` asked for a
    second layout of the screen each time the reply above it grew.
    """

    virtual_size = quiet_virtual_size()


class MessageView(Vertical):
    """A user prompt or a model reply. The body is Markdown (code blocks highlighted).

    While a reply streams (class ``-streaming``) it has no left bar: the rows it keeps free under
    its text (``reply_stream``) are then blank, not a bar of empty lines."""

    DEFAULT_CSS = """
    MessageView { height: auto; margin: 0 0 1 0; padding: 0 1; }
    MessageView.user { border-left: thick $primary; background: $boost; }
    MessageView.assistant { border-left: thick $accent; }
    MessageView.interrupted, MessageView.error { border-left: thick $error; }
    MessageView.cancelled { border-left: thick $warning; }
    MessageView.-streaming { border-left: none; padding-left: 2; }
    MessageView > .who { color: $text-muted; text-style: bold; }
    MessageView > .stats { color: $text-muted; }
    MessageView > Markdown { margin: 0; padding: 0; }
    MessageView > Markdown > MarkdownParagraph.-last-block { margin-bottom: 0; }
    """

    virtual_size = quiet_virtual_size()  # a message never scrolls: a resize needs one layout

    def __init__(
        self,
        role: str,
        text: str = "",
        *,
        who: str = "",
        stats: str = "",
        message_id: int | None = None,
    ) -> None:
        super().__init__(classes=role)
        self.role = role
        self.message_id = message_id
        """The stored message shown (``None``: not stored, or not known here)."""
        self._who = who or role
        self._stats = stats
        self._body = ReplyMarkdown(fold_reply(text).text)  # a huge reply costs what it shows

    def compose(self) -> ComposeResult:
        yield MessageLine(self._who, classes="who", markup=False)
        yield self._body
        stats = MessageLine(self._stats, classes="stats", markup=False)
        stats.display = bool(self._stats)
        yield stats

    @property
    def body(self) -> ReplyMarkdown:
        """The reply's Markdown (while a reply streams, its open block is shown after it)."""
        return self._body

    def set_stats(self, text: str, status: str | None = None) -> None:
        """The numbers under the reply. New numbers that take as many rows as the shown ones are
        repainted in place: a quiet reply's token count every 2 s then costs one repaint, not a
        layout of the screen and the two repaints that follow it."""
        stats = self.query_one(".stats", MessageLine)
        size = stats.content_size
        same_rows = (
            stats.display
            and bool(text)
            and size.width > 0
            and visualize(stats, text, markup=False).get_height(stats.styles, size.width)  # type: ignore[arg-type]  # as Textual's Widget does
            == size.height
        )
        stats.update(text, layout=not same_rows)
        stats.display = bool(text)
        if status is not None:
            for cls in ("interrupted", "error", "cancelled"):
                self.set_class(cls == status, cls)
