"""Show a reply while it streams without re-rendering what is already finished.

``Markdown.append`` re-parses the document's last block on every update, and an open code fence
is highlighted in full each time: a growing 2,000-token fence costs O(n) per update, O(n²) per
reply. ``ReplyStream`` keeps that one case apart:

- prose goes to the reply's real ``Markdown`` body as it comes (its ``append`` updates the last
  paragraph in place, which is cheap);
- an open top-level code fence is held apart in a ``StreamingFence`` (see ``streaming_fence``):
  each full chunk of lines is highlighted once, the rest is plain text that repaints only the
  rows that changed. When the fence closes (or the reply ends) it joins the body, highlighted
  once.

So the finished reply is the body's real Markdown render, as a reply loaded from history is.

A reply past ``LONG_LINES`` lines or ``LONG_CHARS`` characters stops growing the body: its newest
lines go to a ``ReplyTail`` (``reply_tail``), and at the end the body is drawn from
``core/chat/fold.py``'s folded text, as a reply from history is: the cost of each update is the
rows on screen, and the finished reply's that of its folded text, whatever the reply's size.

Each update should cost one small repaint, not a layout of the screen (see ``row_reserve``): the
open block (the body's last paragraph, or the fence's open lines) holds spare rows under its text
(``hold``), so that most updates repaint it alone; the reply as a whole keeps some empty rows
below it (``min-height``), so that most layouts don't change its height and move the whole
anchored transcript. Both are given back when the block or the reply ends. The owner
(``TurnRenderer``, ``chat_turn.py``) feeds coalesced text through ``write`` and calls ``close``
at the end.
"""

from __future__ import annotations

from textual.widget import Widget

from coder_tui.core.chat.fold import REPLY_HEAD, fold_reply
from coder_tui.ui.widgets.message import MessageView
from coder_tui.ui.widgets.reply_markdown import ReplyMarkdown
from coder_tui.ui.widgets.reply_tail import ReplyTail
from coder_tui.ui.widgets.row_reserve import GrowingStatic
from coder_tui.ui.widgets.streaming_fence import Fence, StreamingFence, fence_opening

LONG_LINES = REPLY_HEAD
"""Lines of a reply drawn as they come; past them only its newest lines are (``ReplyTail``)."""
LONG_CHARS = 64 * 1024
"""The same in characters (a few huge lines)."""


class ReplyStream:
    """Renders a streaming reply into a ``MessageView``: the body, and an open fence apart."""

    def __init__(self, view: MessageView) -> None:
        self.view = view
        self.body: ReplyMarkdown = view.body
        self.shown = 0
        """Characters of the reply that are on screen (body and open fence)."""
        self._tail = ""
        """Reply text not in the body yet: an open fence, or what may start one."""
        self._fence: Fence | None = None
        self._fence_lines: list[str] = []
        """The open fence's complete code lines."""
        self._scanned = 0
        """Offset in the tail up to which the fence's lines are read."""
        self._fence_view: StreamingFence | None = None
        self._held: GrowingStatic | None = None
        """The body's open block while it holds spare rows."""
        self._parts: list[str] = []
        """The whole reply so far (drawn folded at the end once it is long)."""
        self._lines = 0
        self._long: ReplyTail | None = None
        """The newest lines of a reply too long to draw whole (``None``: drawn whole)."""

    async def write(self, text: str) -> None:
        """Show ``text``, the next part of the reply."""
        if not text:
            return
        self._parts.append(text)
        self._lines += text.count("\n")
        self.shown += len(text)
        if self._long is None and (self._lines > LONG_LINES or self.shown > LONG_CHARS):
            await self._go_long(text)
            self._wake()
            return
        if self._long is not None:
            self._long.add(text)
            self._wake()
            return
        self._tail += text
        with self.view.app.batch_update():
            before = self._blocks()
            await self._settle()
            await self._show_fence()
            self._hold_open_block()
            self._reserve(new_blocks=self._blocks() != before)
        self._wake()

    async def _go_long(self, text: str) -> None:
        """The reply is too long to draw whole: what is drawn stays, the rest goes to a tail
        that shows its newest lines (what was held apart, an open fence, included)."""
        pending = self._tail + text
        self._tail = ""
        self._fence = None
        with self.view.app.batch_update():
            await self._drop_fence()
            self._hold_open_block(done=True)
            before = self._lines - pending.count("\n")
            self._long = ReplyTail(max(3, self._transcript_height() // 2), before)
            await self.view.mount(self._long, after=self.body)
            self._long.add(pending)
            self.view.styles.min_height = None

    async def close(self) -> None:
        """The reply ended: everything joins the body and the fence view goes."""
        with self.view.app.batch_update():
            if self._long is not None:
                await self._long.remove()
                self._long = None
                await self.body.update(fold_reply("".join(self._parts)).text)
            elif self._tail:
                await self.body.append(self._tail)
            self._tail = ""
            self._fence = None
            await self._drop_fence()
            self._hold_open_block(done=True)
            self.body.mark_last()
            self.view.styles.min_height = None
        self._wake()

    async def _settle(self) -> None:
        """Send text to the body, except an open top-level code fence, which is held apart.

        The body's own ``append`` updates its last block in place, cheap for prose; only a fence
        is highlighted in full per update. A fence is taken as top-level when its opening line
        starts at column 0 (indented ones may belong to a list item: those go to the body).
        """
        while True:
            if self._fence is not None:
                end = self._fence_end()
                if end is None:
                    return
                closed, self._tail = self._tail[:end], self._tail[end:]
                self._fence = None
                await self.body.append(closed)
                continue
            at_line_start = not self.body.source or self.body.source.endswith("\n")
            start = _fence_line(self._tail, at_line_start)
            if start is None:
                held = _maybe_fence_start(self._tail, at_line_start)
                if held:
                    await self.body.append(self._tail[:held])
                    self._tail = self._tail[held:]
                return
            if start:
                await self.body.append(self._tail[:start])
                self._tail = self._tail[start:]
            first = self._tail.partition("\n")[0]
            self._fence = fence_opening(first)
            self._fence_lines = []
            self._scanned = len(first) + 1

    def _fence_end(self) -> int | None:
        """Read the open fence's new complete lines; the offset after its closing line, if any."""
        assert self._fence is not None
        while (newline := self._tail.find("\n", self._scanned)) >= 0:
            line = self._tail[self._scanned : newline + 1]
            self._scanned = newline + 1
            if self._fence.closes(line[:-1]):
                return self._scanned
            self._fence_lines.append(line)
        return None

    async def _show_fence(self) -> None:
        if self._fence is None:
            await self._drop_fence()
            return
        if self._fence_view is None or self._fence_view.fence is not self._fence:
            await self._drop_fence()
            self._fence_view = StreamingFence(self._fence, self._hold_rows())
            await self.view.mount(self._fence_view, after=self.body)
        await self._fence_view.show(self._fence_lines, self._tail[self._scanned :])

    async def _drop_fence(self) -> None:
        if self._fence_view is not None:
            await self._fence_view.remove()
            self._fence_view = None

    def _hold_open_block(self, done: bool = False) -> None:
        """Have the body's open block hold spare rows, and the block before it give them back.

        While a fence is open the body's last block is finished (the fence holds its own rows).
        """
        block = None if done or self._fence_view is not None else self.body.last_block
        if block is self._held:
            return
        if self._held is not None:
            self._held.release()
        self._held = block if isinstance(block, GrowingStatic) else None
        if self._held is not None:
            self._held.hold = self._hold_rows()

    def _hold_rows(self) -> int:
        """Spare rows for an open block: a fifth of the transcript's height, at least 3."""
        return max(3, self._transcript_height() // 5)

    def _transcript_height(self) -> int:
        parent = self.view.parent
        return parent.size.height if isinstance(parent, Widget) else 24

    def _blocks(self) -> tuple[int, int]:
        """How many blocks the reply has on screen (body, fence chunks): mounts change it."""
        fence = len(self._fence_view.children) + 1 if self._fence_view is not None else 0
        return len(self.body.children), fence

    def _reserve(self, new_blocks: bool) -> None:
        """Keep room under the reply so that most updates don't change its height.

        Each height change moves the whole transcript (it is anchored to the bottom) and costs a
        repaint of everything on screen; growing inside reserved rows repaints less. The room is
        a quarter of the transcript's height, taken again when nearly used up. Sizes are those of
        the last layout: blocks mounted by this update are counted as an open block's spare rows
        and a few more, so that the room they need is taken in the same layout, not the next.
        """
        view = self.view
        used = sum(child.outer_size.height for child in view.children if child.display)
        if new_blocks:
            used += self._hold_rows() + 2
        reserved = view.styles.min_height
        current = int(reserved.value) if reserved is not None else 0
        if used + 2 >= current:
            view.styles.min_height = used + max(4, self._transcript_height() // 4)

    def _wake(self) -> None:
        """Have the screen draw now: refreshes asked for inside a batch wait for its next idle."""
        self.view.screen.check_idle()


def _fence_line(text: str, at_line_start: bool) -> int | None:
    """Offset of the first complete column-0 fence opening line in ``text``, or None."""
    offset = 0 if at_line_start else text.find("\n") + 1
    while 0 <= offset < len(text) and (end := text.find("\n", offset)) >= 0:
        if text[offset] in "`~" and fence_opening(text[offset:end]) is not None:
            return offset
        offset = end + 1
    return None


def _maybe_fence_start(text: str, at_line_start: bool) -> int:
    """Where ``text``'s unfinished last line starts if it may still open a fence, else its end.

    That line stays out of the body until its newline comes (at most one line, one update).
    """
    start = text.rfind("\n") + 1
    if start == 0 and not at_line_start:
        return len(text)
    line = text[start:]
    if (
        line
        and line[0] in "`~"
        and (line == line[0] * len(line) or fence_opening(line) is not None)
    ):
        return start
    return len(text)
