"""The live end of a reply too long to draw whole while it streams.

Past ``core/chat/fold.py``'s limits a reply's drawn text stops growing (``ReplyStream`` switches
to this widget): its first lines stay drawn as Markdown above, and this shows the newest lines as
plain text (``CodeLines``: an update repaints the rows that changed) under one line that counts
the lines so far. Each update costs the rows on screen, whatever the reply's size; at the end the
reply is drawn folded (head and tail, Ctrl+T opens it whole) and this widget goes.
"""

from __future__ import annotations

from collections import deque

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from coder_tui.core.chat.fold import MAX_LINE_CHARS, OPEN_KEYS
from coder_tui.ui.widgets.row_reserve import quiet_virtual_size
from coder_tui.ui.widgets.streaming_fence import CodeLines


class ReplyTail(Vertical):
    """The newest ``rows`` lines of a long reply, and how many lines it has so far."""

    DEFAULT_CSS = """
    ReplyTail { height: auto; }
    ReplyTail > .note { color: $text-muted; text-style: italic; }
    """

    virtual_size = quiet_virtual_size()

    def __init__(self, rows: int, lines_before: int) -> None:
        super().__init__()
        self._note = Static("", classes="note", markup=False)
        self._lines = CodeLines()
        self._last: deque[str] = deque(maxlen=rows)
        self._partial = ""
        self.count = lines_before
        """Lines of the reply so far (those drawn above included)."""

    def compose(self) -> ComposeResult:
        yield self._note
        yield self._lines

    @property
    def shown(self) -> tuple[str, ...]:
        """The lines drawn now (the last one may be unfinished)."""
        return self._lines.lines

    def add(self, text: str) -> None:
        """The next part of the reply: the newest lines are drawn, the rest counted."""
        parts = (self._partial + text).split("\n")
        self._partial = parts.pop()
        if len(self._partial) > MAX_LINE_CHARS:  # a huge line: what is drawn of it is enough
            self._partial = self._partial[:MAX_LINE_CHARS]
        self.count += len(parts)
        self._last.extend(line[:MAX_LINE_CHARS] for line in parts[-(self._last.maxlen or 1) :])
        self._lines.set_lines([*self._last, self._partial])
        self._note.update(
            f"⋯ {self.count:,} lines so far: too long to draw whole, the newest below "
            f"(drawn folded at its end; {OPEN_KEYS}) ⋯"
        )
