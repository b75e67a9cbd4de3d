"""The dashboard: a grid of metric tiles, and a one-line strip for narrow terminals. Renders only.

The F4 dashboard (``full``) fills its screen: as many columns as the width allows (``columns_for``)
and rows that share the height, so the tiles' graphs grow with the terminal. The chat's side
column shows the first six tiles, two a row, each as high as its value needs (never cut).
"""

from __future__ import annotations

import math

from textual.app import ComposeResult
from textual.containers import Grid
from textual.events import Resize
from textual.widgets import Static

from coder_tui.core.metrics.types import MetricsSnapshot
from coder_tui.ui import metrics_view
from coder_tui.ui.widgets.tile import Graph, MetricTile

TILE_MIN_WIDTH = 26
"""Columns a tile needs: 22 for its value after the border and padding."""
MAX_COLUMNS = 4


def columns_for(width: int) -> int:
    """How many tile columns a dashboard ``width`` cells wide shows."""
    return max(1, min(MAX_COLUMNS, width // TILE_MIN_WIDTH))


class Dashboard(Grid):
    """Tiles for every metric (``compact`` shows the first six in two columns); ``per_core``
    makes the host CPU tile show each core."""

    DEFAULT_CSS = """
    Dashboard { grid-size: 3; grid-gutter: 0 1; height: auto; }
    Dashboard.compact { grid-size: 2; }
    Dashboard.compact MetricTile { height: auto; }
    Dashboard.full { height: 1fr; grid-rows: 1fr; }
    Dashboard.full MetricTile { height: 1fr; }
    """

    def __init__(self, *, compact: bool = False, id: str | None = None) -> None:
        super().__init__(id=id, classes="compact" if compact else "full")
        self.compact = compact
        self.per_core = False
        self._last: MetricsSnapshot | None = None

    def compose(self) -> ComposeResult:
        shown = metrics_view.TILES[:6] if self.compact else metrics_view.TILES
        for key, title in shown:
            yield MetricTile(title, id=f"tile-{key}")

    def on_resize(self, event: Resize) -> None:
        if self.compact:
            return
        cols = columns_for(event.size.width)
        rows = math.ceil(len(metrics_view.TILES) / cols)
        if (self.styles.grid_size_columns, self.styles.grid_size_rows) != (cols, rows):
            self.styles.grid_size_columns = cols
            self.styles.grid_size_rows = rows

    def show(self, snap: MetricsSnapshot) -> None:
        self._last = snap
        data = metrics_view.tiles(snap, per_core=self.per_core)
        span, span_s = snap.history.maxlen, snap.history.seconds
        for tile in self.query(MetricTile):
            key = (tile.id or "").removeprefix("tile-")
            if key in data:
                item = data[key]
                graph = None
                if item.history is not None:
                    graph = Graph(item.history, span, span_s, item.ceiling, item.unit)
                tile.show(item.text, level=item.level, graph=graph)

    def set_per_core(self, on: bool) -> None:
        """Show (or stop showing) each core in the host CPU tile, from the last snapshot on."""
        self.per_core = on
        if self._last is not None:
            self.show(self._last)


class MetricsStrip(Static):
    """The essentials on one line (shown instead of tiles when the terminal is narrow)."""

    DEFAULT_CSS = """
    MetricsStrip { height: 1; padding: 0 1; color: $text-muted; }
    """

    def show(self, snap: MetricsSnapshot) -> None:
        width = self.content_size.width or None  # not laid out yet: all of it
        self.update(metrics_view.strip(snap, width), layout=False)  # one line: a fixed box
