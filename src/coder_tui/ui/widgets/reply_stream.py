"""Show a reply while it streams without re-rendering what is already finished.

``Markdown.append`` re-parses the document's last block on every update, and an open code fence
is highlighted in full each time: a growing 2,000-token fence costs O(n) per update, O(n²) per
reply. ``ReplyStream`` splits the reply at its last top-level Markdown block:

- finished blocks go to the reply's real ``Markdown`` body once each (highlighted, as in history);
- the open block is shown apart: prose in a small tail ``Markdown`` that holds only that block,
  and an open code fence in a ``StreamingFence``, whose lines live in chunks of ``CHUNK_LINES``:
  only the last chunk changes, as plain text, and each full chunk is highlighted once.

When the fence closes, or the reply ends, the text joins the body and the tail widgets go, so the
finished reply is the real Markdown render. The body's arrangement stays cached while the tail
changes, so an update costs the same early and late in a long reply.

The owner (``MainScreen``) feeds coalesced text through ``write`` and calls ``close`` at the end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from markdown_it import MarkdownIt
from textual.containers import Vertical
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Markdown, Static
from textual.widgets._markdown import MarkdownFence, MarkdownParagraph

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


def split_open_block(text: str, parser: MarkdownIt | None = None) -> tuple[str, str]:
    """Split Markdown into finished blocks and the last top-level block, which may still grow.

    The split falls at the start of a line: ``closed + open == text``.
    """
    tokens = (parser or MarkdownIt("gfm-like")).parse(text)
    start = 0
    for token in reversed(tokens):
        if token.map is not None and token.level == 0:
            start = token.map[0]
            break
    if start <= 0:
        return "", text
    offset = _line_offset(text, start)
    return text[:offset], text[offset:]


def _line_offset(text: str, line: int) -> int:
    """Offset of the start of line ``line`` (0-based, lines end with "\\n" as Markdown sees it)."""
    offset = 0
    for _ in range(line):
        found = text.find("\n", offset)
        if found < 0:
            return len(text)
        offset = found + 1
    return offset


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
    """Renders a streaming reply into a ``MessageView``: its body, then the open block apart."""

    def __init__(self, view: MessageView) -> None:
        self.view = view
        self.body: Markdown = view.body
        self.shown = 0
        """Characters of the reply that are on screen (body and tail)."""
        self._parser = MarkdownIt("gfm-like")
        self._tail = ""
        """Reply text after the body's: the last block, still open."""
        self._fence: Fence | None = None
        self._fence_lines: list[str] = []
        """The open fence's complete code lines."""
        self._scanned = 0
        """Offset in the tail up to which the fence's lines are read."""
        self._prose: Markdown | None = None
        self._prose_text = ""
        self._fence_view: StreamingFence | None = None

    async def write(self, text: str) -> None:
        """Show ``text``, the next part of the reply."""
        if not text:
            return
        self._tail += text
        with self.view.app.batch_update():
            self._reserve()
            await self._settle()
            await self._show_tail()
        self.shown += len(text)
        self._wake()

    async def close(self) -> None:
        """The reply ended: everything joins the body and the tail widgets go."""
        with self.view.app.batch_update():
            if self._tail:
                await self.body.append(self._tail)
                self._tail = ""
            self._fence = None
            await self._drop_fence()
            if self._prose is not None:
                await self._prose.remove()
                self._prose = None
            self.view.styles.min_height = None
        self._wake()

    def _reserve(self) -> None:
        """Keep room under the reply so that most updates don't change its height.

        Each height change moves the whole transcript (it is anchored to the bottom) and costs
        two layouts and a full repaint; growing inside reserved rows costs one small repaint.
        The room is a third of the transcript's height, taken again when it is used up.
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

    async def _settle(self) -> None:
        """Move finished blocks from the tail to the body; notice a fence opening or closing."""
        while True:
            if self._fence is not None:
                end = self._fence_end()
                if end is None:
                    return
                closed, self._tail = self._tail[:end], self._tail[end:]
                self._fence = None
                await self.body.append(closed)
                continue
            if "\n" not in self._tail:
                return
            closed, self._tail = split_open_block(self._tail, self._parser)
            if closed:
                await self.body.append(closed)
            first, newline, _ = self._tail.partition("\n")
            self._fence = fence_opening(first) if newline else None
            if self._fence is None:
                return
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

    async def _show_tail(self) -> None:
        if self._fence is not None:
            await self._hide_prose()
            if self._fence_view is None or self._fence_view.fence is not self._fence:
                await self._drop_fence()
                self._fence_view = StreamingFence(self._fence)
                await self.view.mount(self._fence_view, after=self.body)
            await self._fence_view.show(self._fence_lines, self._tail[self._scanned :])
            return
        await self._drop_fence()
        await self._show_prose()

    async def _show_prose(self) -> None:
        if not self._tail.strip():
            await self._hide_prose()
            return
        if self._prose is None:
            self._prose = Markdown(classes="reply-tail")
            await self.view.mount(self._prose, after=self.body)
        # the body's last paragraph lost its bottom margin (last child): give the gap back
        last = self.body.children[-1] if self.body.children else None
        self._prose.set_class(isinstance(last, MarkdownParagraph), "-after-paragraph")
        self._prose.display = True
        if self._prose_text and self._tail.startswith(self._prose_text):
            await self._prose.append(self._tail[len(self._prose_text) :])
        else:
            await self._prose.update(self._tail)
        self._prose_text = self._tail

    async def _hide_prose(self) -> None:
        if self._prose is not None and self._prose_text:
            await self._prose.update("")
            self._prose_text = ""
            self._prose.display = False

    async def _drop_fence(self) -> None:
        if self._fence_view is not None:
            await self._fence_view.remove()
            self._fence_view = None
