"""Per-thread CPU seconds and context switches of a process, read from ``/proc`` (Linux).

What the benchmarks that watch llama-server's threads (and a watcher's) count: ``threads(pid)``
per thread, ``totals(pid)`` summed. A voluntary switch is a thread going to sleep (it waits, then
wakes); an involuntary one is a preemption (another thread took its core).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_SWITCHES = re.compile(r"^(non)?voluntary_ctxt_switches:\s+(\d+)", re.MULTILINE)
_TICK = os.sysconf("SC_CLK_TCK")

Counters = tuple[float, int, int]
"""(CPU seconds, voluntary switches, involuntary switches)."""


def threads(pid: int) -> dict[str, Counters]:
    """Per thread id of process ``pid``: its counters so far (threads that ended are gone)."""
    out: dict[str, Counters] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except OSError:
            continue  # the thread ended
        fields = stat.rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
        voluntary = involuntary = 0
        for non, count in _SWITCHES.findall(status):
            if non:
                involuntary += int(count)
            else:
                voluntary += int(count)
        out[tid] = (cpu, voluntary, involuntary)
    return out


def totals(pid: int) -> Counters:
    """The counters of all of ``pid``'s threads, summed."""
    values = threads(pid).values()
    return (
        sum(c for c, _, _ in values),
        sum(v for _, v, _ in values),
        sum(n for _, _, n in values),
    )


def wakes(pid: int) -> int:
    """All context switches of ``pid``'s threads so far."""
    _, voluntary, involuntary = totals(pid)
    return voluntary + involuntary
