"""The live server log: sanitised lines appended to a RichLog that keeps the last few thousand."""

from __future__ import annotations

from collections.abc import Iterable

from textual.widgets import RichLog

from coder_tui.core.sanitize import sanitize


class ServerLog(RichLog):
    """Append-only view of llama-server's output; autoscrolls only when already at the bottom."""

    DEFAULT_CSS = """
    ServerLog { border: round $primary-darken-2; border-title-color: $text-muted; }
    """

    def __init__(self, *, max_lines: int = 5000, id: str | None = None) -> None:
        super().__init__(max_lines=max_lines, markup=False, highlight=False, wrap=False, id=id)
        self.border_title = "server log"

    def add_lines(self, lines: Iterable[str]) -> None:
        at_bottom = self.is_vertical_scroll_end
        for line in lines:
            self.write(sanitize(line), scroll_end=at_bottom)
