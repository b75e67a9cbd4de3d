"""The live server log: sanitised lines appended to a RichLog that keeps the last few thousand.

Bounded in memory (a ring of ``max_lines``) and in work per line (a line is cut to
``SHOWN_CHARS``: the whole line is in the log file). How many lines a second reach it at all is
``core/server/log_sink.py``'s to bound; it also says when it dropped some.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual.widgets import RichLog

from coder_tui.core.sanitize import sanitize_line

SHOWN_CHARS = 400
"""Characters of one line shown (wider than any terminal; the rest would only cost rendering)."""


class ServerLog(RichLog):
    """Append-only view of llama-server's output; autoscrolls only when already at the bottom."""

    DEFAULT_CSS = """
    ServerLog { border: round $primary-darken-2; border-title-color: $text-muted; }
    """

    def __init__(self, *, max_lines: int = 2000, id: str | None = None) -> None:
        super().__init__(max_lines=max_lines, markup=False, highlight=False, wrap=False, id=id)
        self.border_title = "server log"

    def add_lines(self, lines: Iterable[str]) -> None:
        at_bottom = self.is_vertical_scroll_end
        for line in lines:
            shown = line if len(line) <= SHOWN_CHARS else line[:SHOWN_CHARS] + "…"
            self.write(sanitize_line(shown), scroll_end=at_bottom)
