"""Units and thresholds for display: bytes, rates, percentages, and which level a value is at.

Core hands over raw numbers in base units (bytes, bytes/s, tokens/s); everything about how they
read on screen lives here.
"""

from __future__ import annotations

DASH = "–"


def size(n: float | None, *, binary: bool = True) -> str:
    """``22.1 GiB``; ``–`` for unknown."""
    if n is None:
        return DASH
    base, units = (
        (1024.0, ("B", "KiB", "MiB", "GiB", "TiB"))
        if binary
        else (
            1000.0,
            ("B", "kB", "MB", "GB", "TB"),
        )
    )
    value = float(n)
    for unit in units:
        if abs(value) < base or unit == units[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= base
    return DASH  # pragma: no cover


def rate(n: float | None) -> str:
    """Bytes per second in decimal units, as link and memory speeds are quoted: ``18.4 GB/s``."""
    return DASH if n is None else f"{size(n, binary=False)}/s"


def tokens(n: float | None) -> str:
    """Tokens per second: ``21.8 t/s``."""
    if n is None:
        return DASH
    return f"{n:.0f} t/s" if n >= 100 else f"{n:.1f} t/s"


def percent(ratio: float | None) -> str:
    """A 0..1 ratio as ``62 %``."""
    return DASH if ratio is None else f"{ratio * 100:.0f} %"


def level(value: float | None, warn: float, high: float) -> str:
    """``ok``, ``warn`` or ``high`` for a value against two thresholds (CSS class names)."""
    if value is None or value < warn:
        return "ok"
    return "warn" if value < high else "high"


def series(values: list[float | None]) -> list[float]:
    """A history tail for a Sparkline: gaps (unknown samples) drawn as zero."""
    return [v if v is not None else 0.0 for v in values]
