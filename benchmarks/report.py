"""Where a benchmark's table goes: printed, and appended to ``docs/performance.md``.

Owns ``DOC`` and ``publish``, shared by the benchmarks that append (``terminal_wakes``,
``dashboard_ab``, ``nvml_calls``); the file is only ever appended to, never rewritten.
"""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "performance.md"


def publish(text: str, *, append: bool) -> None:
    """Print ``text``; with ``append``, add it to the end of ``DOC`` after a blank line."""
    print(text)
    if append:
        with DOC.open("a", encoding="utf-8") as fh:
            fh.write("\n" + text + "\n")
