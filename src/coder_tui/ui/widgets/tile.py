"""One dashboard tile: a title, a value and a graph of recent history that fills the tile.

One widget draws all of it through the Line API (the border and title are its CSS). The value
comes first and is never cut for the graph: its lines wrap on words and take the rows they need;
the graph gets the rows left (any number: the F4 dashboard's tiles share the screen's height),
with an axis row naming the time span and the scale once it has three rows or more
(``tile_sparkline.py``). A tile in the chat's side column is as high as its value and a one-row
graph. A new value repaints only the value rows, new history only the graph rows: the
border and its title stay as drawn. The colors are worked out once per style change
(``notify_style_update``), not on every repaint. Renders only.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual.color import Color
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget

from coder_tui.ui.widgets.tile_sparkline import axis_text, columns, graph_strips, scale_top

VALUE_ROWS = 2
"""Rows a value is given at least (the side column's tiles show exactly these)."""
AXIS_FROM_ROWS = 3
"""A graph of this many rows or more gives its last row to the time axis and scale."""


def value_rows(text: str, width: int) -> list[str]:
    """Every line of the value at ``width``, wrapped on words (nothing dropped)."""
    rows: list[str] = []
    for line in text.split("\n"):
        rows += textwrap.wrap(line, max(1, width), break_on_hyphens=False) or [""]
    return rows


@dataclass(frozen=True)
class Graph:
    """What the graph shows: samples oldest first (``None``: unknown), the window they sit in
    (``span`` samples, ``span_s`` seconds, ending now), a fixed top (``ceiling``) or none (the
    data's maximum), and how the axis writes a value."""

    data: tuple[float | None, ...] = ()
    span: int = 0
    span_s: float = 0.0
    ceiling: float | None = None
    unit: Callable[[float], str] | None = None


class MetricTile(Widget):
    """A labelled number with its recent history; ``show`` sets both."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "tile--unavailable",
        "tile--axis",
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
    MetricTile > .tile--axis { color: $text-muted; }
    MetricTile > .sparkline--max-color { color: $primary; }
    MetricTile > .sparkline--min-color { color: $primary 30%; }
    """

    def __init__(self, title: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = title
        self.text = "–"
        self.history: tuple[float | None, ...] = ()
        self.graph = Graph()
        self._graph_strips: tuple[object, list[Strip]] | None = None
        self._rows: tuple[tuple[str, int], list[str]] | None = None
        self._colors: _Palette | None = None

    @property
    def unavailable(self) -> bool:
        return self.text.startswith("no ") or self.text == "–"

    def show(
        self,
        text: str,
        history: Sequence[float | None] | None = None,
        *,
        level: str = "ok",
        graph: Graph | None = None,
    ) -> None:
        """Set the value and, if given, the history (``history`` alone: its samples are the
        window; ``graph``: the window, scale and unit too)."""
        width, height = self.content_size
        before = len(self._value_rows(width)) if width > 0 else 0
        rows: list[Region] = []
        if text != self.text:
            self.text = text
            rows.append(Region(0, 0, width, max(VALUE_ROWS, before)))
        if graph is None and history is not None:
            graph = Graph(tuple(history), len(history))
        if graph is not None and graph != self.graph:
            self.graph = graph
            self.history = graph.data
            shown = min(height, max(VALUE_ROWS, before))
            rows.append(Region(0, shown, width, max(1, height - shown)))
        for name in ("warn", "high"):
            self.set_class(level == name, name)
        if rows:
            # The tile's box is fixed (its grid cell): a repaint, never a layout. A layout walks
            # the whole screen, a long transcript included: 10-25 ms a tile. Only the rows that
            # changed: the border and its title stay as drawn (a whole-widget refresh renders
            # them again, most of a tile's paint). A value that now wraps to another number of
            # rows moves the graph: all of it.
            if width > 0 and len(self._value_rows(width)) == before:
                self.refresh(*rows)
            else:  # a tile of ``height: auto`` (the side column's) grows or shrinks with it
                self.refresh(layout=True)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        """The value's rows and a one-row graph (a grid sizing its rows asks this)."""
        return max(VALUE_ROWS, len(self._value_rows(width))) + 1

    def notify_style_update(self) -> None:
        """CSS changed (a theme, a class such as ``warn``): draw with the new colors."""
        self._colors = None
        super().notify_style_update()

    def _palette(self) -> _Palette:
        """The tile's colors, worked out once per style change: a repaint clears Textual's own
        style caches, and walking the ancestors for them on every repaint was about 7 % of the
        dashboard's paint (measured when this was written; history in git)."""
        if self._colors is None:
            _, base = self.background_colors
            self._colors = _Palette(
                value=self.rich_style,
                unavailable=self.get_component_rich_style("tile--unavailable"),
                axis=self.get_component_rich_style("tile--axis"),
                low=base + self.get_component_styles("sparkline--min-color").color,
                high=base + self.get_component_styles("sparkline--max-color").color,
            )
        return self._colors

    def _value_rows(self, width: int) -> list[str]:
        if self._rows is None or self._rows[0] != (self.text, width):
            self._rows = ((self.text, width), value_rows(self.text, width))
        return self._rows[1]

    def _graph(self, width: int, rows: int, colors: _Palette) -> list[Strip]:
        """The graph's strips (bars, then the axis row when it has room), kept until its data,
        size or colors change."""
        g = self.graph
        key = (g, width, rows, colors)
        if self._graph_strips is not None and self._graph_strips[0] == key:
            return self._graph_strips[1]
        axis = rows >= AXIS_FROM_ROWS and g.span_s > 0
        bars = rows - 1 if axis else rows
        values = columns(g.data, width, g.span or len(g.data))
        top = scale_top(g.data, g.ceiling)
        strips = graph_strips(values, width, bars, colors.low, colors.high, top)
        if axis:
            known = any(v is not None for v in g.data)
            scale = f"0–{g.unit(top)}" if g.unit is not None and known else ""
            strips.append(Strip([Segment(axis_text(g.span_s, scale, width), colors.axis)], width))
        self._graph_strips = (key, strips)
        return strips

    def render_line(self, y: int) -> Strip:
        width = self.content_region.width
        height = self.content_region.height
        if width <= 0:
            return Strip.blank(0)
        colors = self._palette()
        lines = self._value_rows(width)
        has_graph = self.graph.span > 0 or bool(self.graph.data)
        value_height = min(height, max(VALUE_ROWS, len(lines))) if has_graph else height
        if y < value_height:
            text = lines[y] if y < len(lines) else ""
            style = colors.unavailable if self.unavailable else colors.value
            return Strip([Segment(text, style)]).crop_extend(0, width, style)
        graph = self._graph(width, height - value_height, colors)
        if y - value_height < len(graph):
            return graph[y - value_height]
        return Strip.blank(width, colors.value)


@dataclass(frozen=True)
class _Palette:
    value: Style
    unavailable: Style
    axis: Style
    low: Color
    high: Color
