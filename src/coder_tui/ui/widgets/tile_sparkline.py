"""A tile's history graph, drawn cheaply: bars of block characters, any number of rows high, as
``Strip``s, with an axis row saying the time span and the scale (btop-like).

Time runs left to right and ends at now on the right edge: the graph always spans the history's
whole window (``span`` samples), so a graph that has seen 30 s of a 10-minute window is blank on
the left; unknown samples (``None``) are blank columns, and a graph with no data is blank, never a
row of bars. The rightmost column is the newest sample, the tile's number; the others share the
rest of the window, each its bucket's maximum. Bars scale from 0 to ``ceiling`` (a percentage's
100, a memory's total) or else to the data's maximum, which the axis row names.

Textual's ``Sparkline`` blends a color for every bar and yields one segment per bar through a Rich
renderable (18 % of the app's CPU time on the F4 dashboard, profiled on the GPU host); here a row
is a few segments in ``SHADES`` steps between two colors. ``MetricTile`` (``tile.py``) keeps the
strips until its data, size or colors change.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.segment import Segment
from rich.style import Style
from textual.color import Color
from textual.strip import Strip

BARS = " ▁▂▃▄▅▆▇█"
"""Eighths of a cell, from empty to full."""
SHADES = 4


def columns(data: Sequence[float | None], width: int, span: int) -> list[float | None]:
    """``width`` values for the last ``span`` samples ending at now (``data``'s end). The last
    column is the newest sample alone: the value the tile's number gives (``now``), so the graph
    never ends on a bar its number has left behind. Each other column is the maximum of its
    share of the samples before it, ``None`` where that holds no known sample (before the data
    started, or a gap)."""
    if width <= 0:
        return []
    span = max(span, len(data), 1)
    pad: list[float | None] = [None] * (span - len(data))
    window = pad + list(data[-span:])
    before, cols = window[:-1], width - 1
    out: list[float | None] = []
    for col in range(cols):
        start = col * len(before) // cols
        end = max((col + 1) * len(before) // cols, start + 1)
        known = [v for v in before[start:end] if v is not None]
        out.append(max(known) if known else None)
    out.append(window[-1])
    return out


def scale_top(data: Sequence[float | None], ceiling: float | None) -> float:
    """The value a full column stands for: ``ceiling`` (or the data's maximum if higher, as a
    process using more than one core), else the data's maximum."""
    known = [v for v in data if v is not None]
    peak = max(known) if known else 0.0
    if ceiling:
        return max(ceiling, peak)
    return peak if peak > 0 else 1.0


def bar_rows(values: Sequence[float | None], rows: int, top: float) -> list[list[int]]:
    """Per row (top first), per column, how many eighths of the cell are filled (0-8)."""
    if rows <= 0:
        return []
    grid = [[0] * len(values) for _ in range(rows)]
    for col, v in enumerate(values):
        if v is None or v <= 0:
            continue
        eighths = max(1, round(min(v, top) / top * rows * 8))
        for r in range(rows):
            filled = eighths - (rows - 1 - r) * 8
            grid[r][col] = max(0, min(8, filled))
    return grid


def graph_strips(
    values: Sequence[float | None], width: int, rows: int, low: Color, high: Color, top: float
) -> list[Strip]:
    """``rows`` strips of bars for ``values`` (already one per column), shaded from ``low`` (the
    bottom row) to ``high`` (the top)."""
    styles = [Style(color=low.blend(high, i / (SHADES - 1)).rich_color) for i in range(SHADES)]
    out = []
    for r, levels in enumerate(bar_rows(values, rows, top)):
        shade = (
            styles[(rows - 1 - r) * (SHADES - 1) // max(1, rows - 1)] if rows > 1 else styles[-1]
        )
        out.append(
            Strip([Segment("".join(BARS[e] for e in levels), shade)], width).extend_cell_length(
                width
            )
        )
    return out


def axis_text(span_s: float, scale: str, width: int) -> str:
    """The row under a graph: how far back it reaches on the left, the scale, ``now`` on the
    right (``-10m ─── 0–21.8 t/s ─── now``), cut to fit ``width``."""
    back = f"-{span_s / 60:.0f}m" if span_s >= 60 else f"-{span_s:.0f}s"
    middle = f" {scale} " if scale else "─"
    fill = width - len(back) - len(middle) - len("now")
    if fill < 2:
        short = f"{back} {scale}".strip()
        return short[:width].ljust(width)
    left = fill // 2
    return back + "─" * left + middle + "─" * (fill - left) + "now"
