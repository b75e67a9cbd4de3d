"""A tile's one-row history, drawn cheaply: block characters in a few shades, as one ``Strip``.

Textual's ``Sparkline`` blends a color for every bar and yields one segment per bar through a Rich
renderable. Profiled on the GPU host while the F4 dashboard watched a model that had every core,
18 % of the app's CPU time went to ``Sparkline.__rich_console__`` and 11 % to ``blend_colors``.
``sparkline_strip`` draws the same bars (each bucket's maximum, scaled between the data's minimum
and maximum, Textual's ``▁``-``█``) in ``SHADES`` steps between the same two colors, a run of one
shade as one segment. ``MetricTile`` (``tile.py``) keeps the strip until its data, width or colors
change.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.segment import Segment
from rich.style import Style
from textual.color import Color
from textual.strip import Strip

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


def sparkline_strip(data: Sequence[float], width: int, low: Color, high: Color) -> Strip:
    """One row of bars for ``data`` in ``width`` cells, shaded from ``low`` to ``high``."""
    shades = [Style(color=low.blend(high, i / (SHADES - 1)).rich_color) for i in range(SHADES)]
    levels = bar_levels(data, width) or [0] * width
    segments: list[Segment] = []
    run: list[str] = []
    run_shade = -1
    for level in levels:
        shade = level * (SHADES - 1) // (len(BARS) - 1) if data else 0
        if shade != run_shade and run:
            segments.append(Segment("".join(run), shades[run_shade]))
            run = []
        run_shade = shade
        run.append(BARS[level])
    if run:
        segments.append(Segment("".join(run), shades[run_shade]))
    return Strip(segments, width)
