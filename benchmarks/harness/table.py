"""The one table a guard prints: a title with the target, the date, the machine and the command
that made it, then Markdown rows. ``docs/performance.md`` quotes these tables; nothing here
writes to it."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path


def machine() -> str:
    """This machine in a few words: host name, cores, CPU model, Python."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.node() or 'this host'}: {os.cpu_count()} cores ({cpu}), "
        f"Python {platform.python_version()}"
    )


def command() -> str:
    """The command line that ran this guard, as one would type it again."""
    script = Path(sys.argv[0])
    with contextlib.suppress(ValueError):
        script = script.resolve().relative_to(Path.cwd())
    return " ".join(["python3", str(script), *sys.argv[1:]])


def render(
    target: str,
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    notes: Sequence[str] = (),
) -> str:
    """``target``'s table: its title line (date, machine, command), the rows, then ``notes``."""
    stamp = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    lines = [
        f"## {target}",
        "",
        f"{stamp}, {machine()}. `{command()}`",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)
