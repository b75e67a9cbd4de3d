"""Which columns of a table fit a width: drop the least important first, and say which went.

Pure functions, tested without a terminal. A screen lists its columns with a priority (0 is kept
longest) and the cells it would show; ``fit`` returns the columns to show, in their own order,
and the labels of those left out for the screen's note (``hidden_note``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

CELL_PADDING = 2
"""A ``DataTable`` cell's padding: one column each side."""


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    priority: int
    """0: always shown; higher numbers are left out first."""


def column_width(column: Column, cells: Sequence[str]) -> int:
    """The cells a column takes: its widest text and the padding."""
    return max([len(column.label), *(len(c) for c in cells)]) + CELL_PADDING


def fit(
    columns: Sequence[Column], rows: Sequence[Mapping[str, str]], width: int
) -> tuple[list[Column], list[Column]]:
    """The columns that fit ``width`` (in order) and those left out (least important first)."""
    widths = {c.key: column_width(c, [r.get(c.key, "") for r in rows]) for c in columns}
    kept = list(columns)
    dropped: list[Column] = []
    for column in sorted(columns, key=lambda c: -c.priority):
        if sum(widths[c.key] for c in kept) <= width or column.priority == 0:
            break
        kept.remove(column)
        dropped.append(column)
    return kept, dropped


def hidden_note(dropped: Sequence[Column]) -> str:
    """``hidden at this width: model, quant`` (empty when nothing is left out)."""
    if not dropped:
        return ""
    return "hidden at this width: " + ", ".join(c.label for c in dropped)
