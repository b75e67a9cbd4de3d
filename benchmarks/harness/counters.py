"""CPU time and context switches of a process, read from ``/proc`` (Linux), over a window.

``threads(pid)`` gives per-thread counters, ``totals(pid)`` their sum; ``Window`` turns two
readings into a share of one core and wake-ups a second, and, given the server's pid, what the
server spent over the same window. A voluntary switch is a thread going to sleep (it waits, then
wakes); an involuntary one is a preemption (another thread took its core).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

_SWITCHES = re.compile(r"^(non)?voluntary_ctxt_switches:\s+(\d+)", re.MULTILINE)
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Counters:
    """What a process (or one thread) has spent so far."""

    cpu_s: float
    voluntary: int
    involuntary: int

    @property
    def switches(self) -> int:
        return self.voluntary + self.involuntary

    def __sub__(self, other: Counters) -> Counters:
        return Counters(
            self.cpu_s - other.cpu_s,
            self.voluntary - other.voluntary,
            self.involuntary - other.involuntary,
        )


ZERO = Counters(0.0, 0, 0)


def threads(pid: int) -> dict[str, Counters]:
    """Per thread id of process ``pid``: its counters so far (threads that ended are gone)."""
    out: dict[str, Counters] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            cpu = _cpu_s(f"/proc/{pid}/task/{tid}/stat")
            status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except OSError:
            continue  # the thread ended
        voluntary = involuntary = 0
        for non, count in _SWITCHES.findall(status):
            if non:
                involuntary += int(count)
            else:
                voluntary += int(count)
        out[tid] = Counters(cpu, voluntary, involuntary)
    return out


def _cpu_s(stat_path: str) -> float:
    """utime + stime of a ``/proc/.../stat`` file, in seconds."""
    fields = Path(stat_path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def totals(pid: int) -> Counters:
    """Process ``pid``'s CPU (all its threads, ended ones included) and its live threads'
    context switches, summed (ZERO once it is gone)."""
    values = threads(pid).values()
    try:
        cpu = _cpu_s(f"/proc/{pid}/stat")
    except OSError:
        return ZERO
    return Counters(cpu, sum(c.voluntary for c in values), sum(c.involuntary for c in values))


class Window:
    """What process ``pid`` spent between ``start`` and ``stop``: ``share`` of one core and
    ``wakes_per_s`` (context switches of all its threads); with ``server_pid``, also ``server``,
    what the server's threads spent over the same window."""

    def __init__(self, pid: int, server_pid: int | None = None) -> None:
        self.pid = pid
        self.server_pid = server_pid
        self.share = 0.0
        self.wakes_per_s = 0.0
        self.seconds = 0.0
        self.server: Counters | None = None

    def start(self) -> Window:
        self._t0 = time.monotonic()
        self._c0 = totals(self.pid)
        self._s0 = totals(self.server_pid) if self.server_pid else None
        return self

    def stop(self) -> Window:
        self.seconds = max(time.monotonic() - self._t0, 1e-9)
        spent = totals(self.pid) - self._c0
        self.share = spent.cpu_s / self.seconds
        self.wakes_per_s = spent.switches / self.seconds
        if self._s0 is not None and self.server_pid:
            self.server = totals(self.server_pid) - self._s0
        return self

    def describe(self, tokens: int | None = None) -> str:
        """One line: CPU and wake-ups; with ``tokens``, the server's spend per 1,000 tokens."""
        text = f"CPU {100 * self.share:.1f} % of a core, {self.wakes_per_s:.1f} wakes/s"
        if self.server is not None and tokens:
            per_k = 1000 / tokens
            text += (
                f", server per 1k tokens: {1000 * self.server.cpu_s * per_k:.0f} ms CPU, "
                f"{self.server.voluntary * per_k:.0f} waits, "
                f"{self.server.involuntary * per_k:.0f} preempted"
            )
        return text
