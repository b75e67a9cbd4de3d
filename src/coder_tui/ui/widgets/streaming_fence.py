"""An open code fence while its lines stream in, drawn so that each update costs a few rows.

``Markdown.append`` would re-parse and re-highlight the whole open fence per update: O(n) per
update, O(n²) per reply. ``StreamingFence`` shows the fence the way ``MarkdownFence`` does, in
chunks of ``CHUNK_LINES`` lines: each full chunk is highlighted once (a ``Static``), and the
open rest is plain text in ``CodeLines``, which draws with the Line API: an update repaints the
rows that changed (usually the last one or two), not the chunk, and holds spare rows under its
text (see ``row_reserve``) so that most updates need no layout. When the fence closes, the owner
(``ReplyStream``) drops this widget and the fence joins the reply's Markdown, highlighted once.

Also here: ``Fence`` and ``fence_opening``, which read the fence's opening and closing lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rich.segment import Segment
from textual.containers import Vertical
from textual.content import Content
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Static
from textual.widgets.markdown import MarkdownFence

from coder_tui.ui.widgets.row_reserve import held_height, quiet_virtual_size

CHUNK_LINES = 32
"""Lines per highlighted chunk of a streaming fence (the open rest is plain text)."""

_FENCE_OPEN = re.compile(r" {0,3}(`{3,}|~{3,})([^\n]*)")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


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


def _clean(line: str) -> str:
    """A line as one row of cells: tabs expanded, control characters shown as U+FFFD."""
    return _CONTROL.sub("\ufffd", line.expandtabs())


class CodeLines(Widget):
    """Lines of plain code, not wrapped, that repaint only the rows an update changed."""

    DEFAULT_CSS = "CodeLines { height: auto; }"

    virtual_size = quiet_virtual_size()

    def __init__(self, hold: int = 0) -> None:
        super().__init__()
        self.hold = hold
        """Spare rows to keep under the lines while they grow (see ``row_reserve``)."""
        self._held_height = 0
        self._lines: list[str] = []

    @property
    def lines(self) -> tuple[str, ...]:
        """The lines shown (tabs expanded)."""
        return tuple(self._lines)

    def set_lines(self, lines: list[str]) -> None:
        """Show ``lines`` (no newlines): repaint the rows that changed, or lay out if they no
        longer fit the rows held."""
        old, new = self._lines, [_clean(line) for line in lines]
        if old == new:
            return
        first = next(
            (y for y, (was, now) in enumerate(zip(old, new, strict=False)) if was != now),
            min(len(old), len(new)),
        )
        self._lines = new
        width, height = self.size
        if not width or len(new) > height:
            self.refresh(layout=True)
        else:
            self.refresh(Region(0, first, width, max(len(old), len(new)) - first))

    def restart(self, lines: list[str]) -> None:
        """Show ``lines`` after those above went to a chunk: the held rows start again."""
        self._lines = [_clean(line) for line in lines]
        self._held_height = 0
        self.refresh(layout=True)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        self._held_height = held_height(len(self._lines), self.hold, self._held_height)
        return self._held_height or len(self._lines)

    def render_line(self, y: int) -> Strip:
        style = self.rich_style
        width = self.size.width
        if y >= len(self._lines):
            return Strip.blank(width, style)
        return Strip([Segment(self._lines[y], style)]).crop_extend(0, width, style)


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

    virtual_size = quiet_virtual_size()

    def __init__(self, fence: Fence, hold: int = 0) -> None:
        super().__init__()
        self.fence = fence
        self._open = CodeLines(hold)
        self._done = 0
        """Lines in full chunks (highlighted, never touched again)."""

    @property
    def open_lines(self) -> CodeLines:
        """The fence's lines after its full chunks, as plain text."""
        return self._open

    def _highlight(self, code: str) -> Content:
        return MarkdownFence.highlight(
            code,
            self.fence.info,
            ansi=self.app.native_ansi_color,
            dark=self.app.current_theme.dark,
        )

    async def show(self, lines: list[str], partial: str) -> None:
        """Show the fence's complete ``lines`` (each ends with a newline) and its ``partial`` one."""
        if not self._open.is_mounted:
            await self.mount(self._open)
        chunked = False
        while len(lines) - self._done >= CHUNK_LINES:
            full = "".join(lines[self._done : self._done + CHUNK_LINES]).removesuffix("\n")
            await self.mount(Static(self._highlight(full)), before=self._open)
            self._done += CHUNK_LINES
            chunked = True
        rest = [line.removesuffix("\n") for line in lines[self._done :]]
        if partial:
            rest.append(partial)
        if chunked:
            self._open.restart(rest)
        else:
            self._open.set_lines(rest)
