"""Show a reply while it streams without re-rendering what is already finished.

``Markdown.append`` re-parses the document's last block on every update, and an open code fence
is highlighted in full each time: a growing 2,000-token fence costs O(n) per update, O(n²) per
reply. ``ReplyStream`` keeps that one case apart:

- prose goes to the reply's real ``Markdown`` body as it comes (its ``append`` updates the last
  paragraph in place, which is cheap);
- an open top-level code fence is held apart in a ``StreamingFence``, whose lines live in chunks
  of ``CHUNK_LINES``: only the last chunk changes, as plain text, and each full chunk is
  highlighted once. When the fence closes (or the reply ends) it joins the body, highlighted once.

So the finished reply is the body's real Markdown render, as a reply loaded from history is.

While streaming, the reply keeps some empty rows below it (``min-height``), so that most updates
don't change its height and move the whole anchored transcript. The owner (``MainScreen``) feeds
coalesced text through ``write`` and calls ``close`` at the end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from textual.containers import Vertical
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Markdown, Static
from textual.widgets._markdown import MarkdownFence

from coder_tui.ui.widgets.message import MessageView

CHUNK_LINES = 32
"""Lines per chunk of a streaming fence: the last chunk is re-rendered per update, as plain text."""

_FENCE_OPEN = re.compile(r" {0,3}(`{3,}|~{3,})([^\n]*)")


@dataclass(frozen=True)
class Fence:
    """An opening code fence: its marker (``` or ~~~, and length) and info string."""

    char: str
    length: int
    info: str

    def closes(self, line: str) -> bool:
        """Whether ``line`` (without its newline) is a closing fence for this one."""
        stripped = line.lstrip(" ")
        if len(line) - len(stripped) > 3:
            return False
        run = len(stripped) - len(stripped.lstrip(self.char))
        return run >= self.length and not stripped[run:].strip(" \t")


def fence_opening(line: str) -> Fence | None:
    """The fence ``line`` opens (``line`` without its newline), or None."""
    match = _FENCE_OPEN.fullmatch(line)
    if match is None:
        return None
    marker, info = match.groups()
    if marker[0] == "`" and "`" in info:
        return None  # not a fence in CommonMark: an inline code span
    return Fence(marker[0], len(marker), info.strip())


class StreamingFence(Vertical):
    """An open code fence, shown like ``MarkdownFence`` while its lines arrive."""

    DEFAULT_CSS = """
    StreamingFence {
        height: auto;
        margin: 1 0;
        padding: 1 2;
        color: rgb(210,210,210);
        background: black 10%;
        &:light { background: white 30%; }
        & > Static { height: auto; text-wrap: nowrap; text-overflow: clip; }
    }
    StreamingFence:ansi { background: transparent; margin: 0; padding: 1 0; }
    """

    def __init__(self, fence: Fence) -> None:
        super().__init__()
        self.fence = fence
        self._done = 0
        """Lines in full chunks (highlighted, never touched again)."""
        self._shown: str | None = None

    def _highlight(self, code: str) -> Content:
        return MarkdownFence.highlight(
            code,
            self.fence.info,
            ansi=self.app.native_ansi_color,
            dark=self.app.current_theme.dark,
        )

    async def show(self, lines: list[str], partial: str) -> None:
        """Show the fence's complete ``lines`` (each ends with a newline) and its ``partial`` one."""
        chunks = list(self.query_children(Static))
        while len(lines) - self._done >= CHUNK_LINES:
            full = "".join(lines[self._done : self._done + CHUNK_LINES]).removesuffix("\n")
            content = self._highlight(full)
            if len(chunks) * CHUNK_LINES > self._done:
                chunks[-1].update(content)
            else:
                await self.mount(Static(content))
            self._done += CHUNK_LINES
            self._shown = None
            chunks = list(self.query_children(Static))
        rest = "".join(lines[self._done :]) + partial
        rest = rest.removesuffix("\n")
        if rest == self._shown:
            return
        self._shown = rest
        if len(chunks) * CHUNK_LINES > self._done:
            chunks[-1].update(Content(rest))
        elif rest:
            await self.mount(Static(Content(rest)))


class ReplyStream:
    """Renders a streaming reply into a ``MessageView``: the body, and an open fence apart."""

    def __init__(self, view: MessageView) -> None:
        self.view = view
        self.body: Markdown = view.body
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

    async def write(self, text: str) -> None:
        """Show ``text``, the next part of the reply."""
        if not text:
            return
        self._tail += text
        with self.view.app.batch_update():
            self._reserve()
            await self._settle()
            await self._show_fence()
        self.shown += len(text)
        self._wake()

    async def close(self) -> None:
        """The reply ended: everything joins the body and the fence view goes."""
        with self.view.app.batch_update():
            if self._tail:
                await self.body.append(self._tail)
                self._tail = ""
            self._fence = None
            await self._drop_fence()
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
            self._fence_view = StreamingFence(self._fence)
            await self.view.mount(self._fence_view, after=self.body)
        await self._fence_view.show(self._fence_lines, self._tail[self._scanned :])

    async def _drop_fence(self) -> None:
        if self._fence_view is not None:
            await self._fence_view.remove()
            self._fence_view = None

    def _reserve(self) -> None:
        """Keep room under the reply so that most updates don't change its height.

        Each height change moves the whole transcript (it is anchored to the bottom) and costs
        two layouts and a repaint of everything on screen; growing inside reserved rows repaints
        less. The room is a third of the transcript's height, taken again when used up.
        """
        view = self.view
        used = sum(child.outer_size.height for child in view.children if child.display)
        reserved = view.styles.min_height
        current = int(reserved.value) if reserved is not None else 0
        if used + 2 >= current:
            parent = view.parent
            step = max(4, (parent.size.height if isinstance(parent, Widget) else 24) // 3)
            view.styles.min_height = used + step

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
