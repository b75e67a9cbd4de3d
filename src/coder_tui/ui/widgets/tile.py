"""One dashboard tile: a title, a value of up to two lines and a sparkline of recent history.

One widget draws all of it through the Line API (the border and title are its CSS). Built from a
``Static`` and a sparkline in a container, a tile was three widgets to repaint every tick, and the
F4 dashboard repainted 36 of them. A new value repaints only the value rows, new history only the
sparkline row: the border and its title stay as drawn. The colors are worked out once per style
change (``notify_style_update``), not on every repaint. Renders only.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual.color import Color
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget

from coder_tui.ui.widgets.tile_sparkline import sparkline_strip

VALUE_ROWS = 2


def value_rows(text: str, width: int) -> list[str]:
    """The value's first ``VALUE_ROWS`` rows at ``width``: each line wrapped on words, as a
    ``Static`` of that height would show it."""
    rows: list[str] = []
    for line in text.split("\n"):
        rows += textwrap.wrap(line, width, break_long_words=True) or [""]
    return rows[:VALUE_ROWS]


class MetricTile(Widget):
    """A labelled number with its recent history; ``show`` sets both."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "tile--unavailable",
        "sparkline--max-color",
        "sparkline--min-color",
    }
    DEFAULT_CSS = """
    MetricTile {
        height: 5; border: round $panel-lighten-2; padding: 0 1; border-title-color: $text-muted;
    }
    MetricTile.warn { border: round $warning; }
    MetricTile.high { border: round $error; }
    MetricTile > .tile--unavailable { color: $text-muted; }
    MetricTile > .sparkline--max-color { color: $primary; }
    MetricTile > .sparkline--min-color { color: $primary 30%; }
    """

    def __init__(self, title: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = title
        self.text = "–"
        self.history: tuple[float, ...] = ()
        self._spark: tuple[object, Strip] | None = None
        self._rows: tuple[tuple[str, int], list[str]] | None = None
        self._colors: _Palette | None = None

    @property
    def unavailable(self) -> bool:
        return self.text.startswith("no ") or self.text == "–"

    def show(self, text: str, history: Sequence[float] | None = None, *, level: str = "ok") -> None:
        rows: list[Region] = []
        width = self.content_size.width
        if text != self.text:
            self.text = text
            rows.append(Region(0, 0, width, VALUE_ROWS))
        if history is not None and tuple(history) != self.history:
            self.history = tuple(history)
            rows.append(Region(0, VALUE_ROWS, width, 1))
        for name in ("warn", "high"):
            self.set_class(level == name, name)
        if rows:
            # The tile's box is fixed (height 5, its grid cell): a repaint, never a layout. A
            # layout walks the whole screen, a long transcript included: 10-25 ms a tile. Only
            # the rows that changed: the border and its title stay as drawn (a whole-widget
            # refresh renders them again, most of a tile's paint).
            if width > 0:
                self.refresh(*rows)
            else:  # not laid out yet: all of it
                self.refresh()

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        """Two value rows and the sparkline (a grid sizing its rows asks this, not the CSS)."""
        return VALUE_ROWS + 1

    def notify_style_update(self) -> None:
        """CSS changed (a theme, a class such as ``warn``): draw with the new colors."""
        self._colors = None
        super().notify_style_update()

    def _palette(self) -> _Palette:
        """The tile's colors, worked out once per style change: a repaint clears Textual's own
        style caches, and walking the ancestors for them on every repaint was about 7 % of the
        dashboard's paint (``benchmarks/dashboard_paint.py``)."""
        if self._colors is None:
            _, base = self.background_colors
            self._colors = _Palette(
                value=self.rich_style,
                unavailable=self.get_component_rich_style("tile--unavailable"),
                low=base + self.get_component_styles("sparkline--min-color").color,
                high=base + self.get_component_styles("sparkline--max-color").color,
            )
        return self._colors

    def render_line(self, y: int) -> Strip:
        width = self.content_region.width
        if width <= 0:
            return Strip.blank(0)
        colors = self._palette()
        if y < VALUE_ROWS:
            if self._rows is None or self._rows[0] != (self.text, width):
                self._rows = ((self.text, width), value_rows(self.text, width))
            rows = self._rows[1]
            text = rows[y] if y < len(rows) else ""
            style = colors.unavailable if self.unavailable else colors.value
            return Strip([Segment(text, style)]).crop_extend(0, width, style)
        if y == VALUE_ROWS:
            key = (self.history, width, colors.low, colors.high)
            if self._spark is None or self._spark[0] != key:
                self._spark = (key, sparkline_strip(self.history, width, colors.low, colors.high))
            return self._spark[1]
        return Strip.blank(width, colors.value)


@dataclass(frozen=True)
class _Palette:
    value: Style
    unavailable: Style
    low: Color
    high: Color
