"""A tile's one-row history, drawn cheaply: block characters in a few shades, through the Line API.

Textual's ``Sparkline`` blends a color for every bar and yields one segment per bar through a Rich
renderable. Profiled on the GPU host while the F4 dashboard watched a model that had every core,
18 % of the app's CPU time went to ``Sparkline.__rich_console__`` and 11 % to ``blend_colors``.
``TileSparkline`` draws the same bars (each bucket's maximum, scaled between the data's minimum
and maximum, Textual's ``▁``-``█``) in ``SHADES`` steps between the same two colors. A run of one
shade is one segment, and the strip is kept until the data, the width or the colors change.
Renders only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

BARS = "▁▂▃▄▅▆▇█"
SHADES = 4


def bar_levels(data: Sequence[float], width: int) -> list[int]:
    """Bar heights 0-7 for ``width`` columns: each column is its bucket's maximum, scaled between
    the data's minimum and maximum (a flat series sits at the bottom)."""
    if width <= 0 or not data:
        return []
    if len(data) == 1:
        return [len(BARS) - 1] * width  # one sample: a full bar, as Textual's Sparkline draws it
    low, high = min(data), max(data)
    extent = (high - low) or 1.0
    n = len(data)
    levels = []
    for col in range(width):
        start = col * n // width
        end = max((col + 1) * n // width, start + 1)
        peak = max(data[start:end]) if start < n else data[-1]
        levels.append(min(len(BARS) - 1, int((peak - low) / extent * (len(BARS) - 1))))
    return levels


class TileSparkline(Widget):
    """``data`` (a sequence of floats) as one row of bars, ``$primary`` fading to 30 % for low ones."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"sparkline--max-color", "sparkline--min-color"}
    DEFAULT_CSS = """
    TileSparkline { height: 1; }
    TileSparkline > .sparkline--max-color { color: $primary; }
    TileSparkline > .sparkline--min-color { color: $primary 30%; }
    """

    data: reactive[tuple[float, ...]] = reactive((), layout=False)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._cache: tuple[object, Strip] | None = None

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y != 0 or width <= 0:
            return Strip.blank(width)
        _, base = self.background_colors
        low = base + self.get_component_styles("sparkline--min-color").color
        high = base + self.get_component_styles("sparkline--max-color").color
        key = (self.data, width, low, high)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        shades = [Style(color=low.blend(high, i / (SHADES - 1)).rich_color) for i in range(SHADES)]
        levels = bar_levels(self.data, width) or [0] * width
        segments: list[Segment] = []
        run: list[str] = []
        run_shade = -1
        for level in levels:
            shade = level * (SHADES - 1) // (len(BARS) - 1) if self.data else 0
            if shade != run_shade and run:
                segments.append(Segment("".join(run), shades[run_shade]))
                run = []
            run_shade = shade
            run.append(BARS[level])
        if run:
            segments.append(Segment("".join(run), shades[run_shade]))
        strip = Strip(segments, width)
        self._cache = (key, strip)
        return strip
