"""One dashboard tile: a title, a value line and a sparkline of recent history. Renders only."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from coder_tui.ui.widgets.tile_sparkline import TileSparkline


class MetricTile(Vertical):
    """A labelled number with its recent history; ``show`` sets both."""

    DEFAULT_CSS = """
    MetricTile {
        height: 5; border: round $panel-lighten-2; padding: 0 1; border-title-color: $text-muted;
    }
    MetricTile > .value { height: 2; }
    MetricTile.warn { border: round $warning; }
    MetricTile.high { border: round $error; }
    MetricTile > .value.-unavailable { color: $text-muted; }
    """

    def __init__(self, title: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = title

    def compose(self) -> ComposeResult:
        yield Static("–", classes="value", markup=False)
        yield TileSparkline()

    def show(self, text: str, history: Sequence[float] | None = None, *, level: str = "ok") -> None:
        value = self.query_one(".value", Static)
        # The value's box is fixed (height 2, the tile's width): no layout. A layout pass walks the
        # whole screen, a long transcript included, and cost 10-25 ms for each tile every second.
        value.update(text, layout=False)
        value.set_class(text.startswith("no ") or text == "–", "-unavailable")
        for name in ("warn", "high"):
            self.set_class(level == name, name)
        if history is not None:
            self.query_one(TileSparkline).data = tuple(history)
