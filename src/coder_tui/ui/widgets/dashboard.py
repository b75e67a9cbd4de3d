"""The dashboard: a grid of metric tiles, and a one-line strip for narrow terminals. Renders only."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Grid
from textual.widgets import Static

from coder_tui.core.metrics.types import MetricsSnapshot
from coder_tui.ui import metrics_view
from coder_tui.ui.widgets.tile import MetricTile


class Dashboard(Grid):
    """Tiles for every metric (``compact`` shows the first six in two columns)."""

    DEFAULT_CSS = """
    Dashboard { grid-size: 3; grid-gutter: 0 1; height: auto; }
    Dashboard.compact { grid-size: 2; }
    """

    def __init__(self, *, compact: bool = False, id: str | None = None) -> None:
        super().__init__(id=id, classes="compact" if compact else "")
        self.compact = compact

    def compose(self) -> ComposeResult:
        shown = metrics_view.TILES[:6] if self.compact else metrics_view.TILES
        for key, title in shown:
            yield MetricTile(title, id=f"tile-{key}")

    def show(self, snap: MetricsSnapshot) -> None:
        data = metrics_view.tiles(snap)
        for tile in self.query(MetricTile):
            key = (tile.id or "").removeprefix("tile-")
            if key in data:
                item = data[key]
                tile.show(item.text, item.history, level=item.level)


class MetricsStrip(Static):
    """The essentials on one line (shown instead of tiles when the terminal is narrow)."""

    DEFAULT_CSS = """
    MetricsStrip { height: 1; padding: 0 1; color: $text-muted; }
    """

    def show(self, snap: MetricsSnapshot) -> None:
        self.update(metrics_view.strip(snap), layout=False)  # one line, full width: a fixed box
