"""Units and thresholds for display: bytes, rates, percentages, and which level a value is at.

Core hands over raw numbers in base units (bytes, bytes/s, tokens/s); how they read on screen
lives here, except the unit rule for sizes and rates, which is ``core/units.py``'s (the CLI and the
bench report print with it too).
"""

from __future__ import annotations

from coder_tui.core.units import format_rate, format_size

DASH = "–"


def size(n: float | None) -> str:
    """Bytes in IEC units: ``22.1 GiB``; ``–`` for unknown (``core.units.format_size``)."""
    return format_size(n, missing=DASH)


def rate(n: float | None) -> str:
    """Bytes per second in SI units, as link and memory speeds are quoted: ``18.4 GB/s``
    (``core.units.format_rate``)."""
    return format_rate(n, missing=DASH)


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
