"""Units for people: memory and file sizes in IEC units, data rates in SI units, one rule each.

Owns ``format_size`` (bytes as ``B``, ``KiB``, ``MiB``, ``GiB``, ``TiB``: RAM, VRAM, model files,
KV caches) and ``format_rate`` (bytes per second as ``B/s``, ``kB/s``, ``MB/s``, ``GB/s``,
``TB/s``: PCIe links, memory bandwidth, as those are quoted). Every size or rate that coder-tui
prints goes through these two, so one quantity never reads ``MiB`` in one view and ``MB`` in
another: the TUI (through ``ui/format.py``), the CLI and the bench report. Parsing what a user
types (``24GiB``, ``50GB/s``) is ``tune/fit.py``'s; colours and thresholds are the UI's.
"""

from __future__ import annotations

SIZE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
"""Powers of 1024."""
RATE_UNITS = ("B/s", "kB/s", "MB/s", "GB/s", "TB/s", "PB/s")
"""Powers of 1000."""
MISSING = "–"
"""What an unknown value reads as, unless the caller says otherwise."""


def _scaled(n: float, base: float, units: tuple[str, ...], digits: int) -> str:
    value = float(n)
    for unit in units:
        if abs(value) < base or unit == units[-1]:
            break
        value /= base
    if unit == units[0]:  # whole bytes: no fraction to show
        return f"{value:.0f} {unit}"
    return f"{value:.{digits}f} {unit}"


def format_size(n: float | None, *, digits: int = 1, missing: str = MISSING) -> str:
    """Bytes in IEC units, the largest that keeps the number under 1024: ``22.1 GiB``,
    ``512.0 MiB``, ``980 B`` (``digits`` after the point above bytes); ``missing`` for ``None``."""
    if n is None:
        return missing
    return _scaled(n, 1024.0, SIZE_UNITS, digits)


def format_rate(n: float | None, *, digits: int = 1, missing: str = MISSING) -> str:
    """Bytes per second in SI units, the largest that keeps the number under 1000: ``18.4 GB/s``,
    ``100.0 MB/s``, ``3.4 TB/s``; ``missing`` for ``None``."""
    if n is None:
        return missing
    return _scaled(n, 1000.0, RATE_UNITS, digits)
