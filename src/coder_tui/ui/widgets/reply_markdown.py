"""The Markdown of a message's body: Textual's ``Markdown``, made cheap to stream into.

Three changes, none visible in a finished render (history and streamed replies use this class
alike, so a finished reply is the same render as one loaded from history):

- paragraphs are ``StreamParagraph``: while ``ReplyStream`` holds rows under the open one, an
  update that fits them repaints the paragraph alone instead of laying out the screen;
- the last top-level block carries the class ``-last-block`` once the document is complete
  (``MessageView`` drops the last paragraph's bottom margin with it). A ``:last-child`` rule did
  the same, but Textual restyles every sibling of a node with an order-dependent rule when a
  block is mounted: O(blocks) per block while a reply streams. The class is set once: O(1);
- a resize costs one layout, not two (``quiet_virtual_size``).
"""

from __future__ import annotations

from textual.await_complete import AwaitComplete
from textual.widget import Widget
from textual.widgets import Markdown

# Textual exports no paragraph class; ``Markdown.BLOCKS`` (a documented hook) names it, and
# tests/ui/test_reply_markdown.py checks that this is still the class it names.
from textual.widgets._markdown import MarkdownParagraph
from textual.widgets.markdown import MarkdownBlock

from coder_tui.ui.widgets.row_reserve import GrowingStatic, quiet_virtual_size

LAST_BLOCK = "-last-block"


class StreamParagraph(MarkdownParagraph, GrowingStatic):
    """A Markdown paragraph that can hold spare rows while it streams (see ``GrowingStatic``).

    ``MarkdownParagraph`` comes first: Textual gives a widget the CSS type names of its first
    bases only, so this stays a ``MarkdownParagraph`` to the stylesheet and to queries; its
    ``update`` and ``get_content_height`` are ``GrowingStatic``'s (no Markdown class defines them).
    """


class ReplyMarkdown(Markdown):
    """``Markdown`` with ``StreamParagraph`` paragraphs and its last block marked."""

    BLOCKS: dict[str, type[MarkdownBlock]] = {  # noqa: RUF012 (Markdown declares no ClassVar)
        **Markdown.BLOCKS,
        "paragraph_open": StreamParagraph,
    }
    virtual_size = quiet_virtual_size()  # it never scrolls (overflow hidden): no second layout

    _last: Widget | None = None

    def update(self, markdown: str) -> AwaitComplete:
        updated = super().update(markdown)

        async def update_and_mark() -> None:
            await updated
            self.mark_last()

        return AwaitComplete(update_and_mark())

    @property
    def last_block(self) -> Widget | None:
        """The document's last top-level block (the open one while a reply streams)."""
        children = self.children
        return children[-1] if children else None

    def mark_last(self) -> None:
        """Move ``-last-block`` to the last block: after ``update``, and when a reply ends.

        Not per ``append``: while a reply streams, its open paragraph holds empty rows under it
        anyway, and a class change restyles the block (a few milliseconds each).
        """
        last = self.last_block
        if last is self._last:
            return
        if self._last is not None and self._last.parent is self:
            self._last.remove_class(LAST_BLOCK)
        if last is not None:
            last.add_class(LAST_BLOCK)
        self._last = last
