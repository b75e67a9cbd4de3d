"""Is a CPU core idle? How often a streaming reply may touch the screen while none is.

With llama-server's threads on every core (a MoE whose experts are computed on the CPU), the
threads meet at a barrier after every operation: whatever CPU time another process takes, on any
core, stalls all of them. So the app's rendering turns into lost tokens about one for one
(``benchmarks/observer.py``: rendering at 10 updates a second cost 12-30 % of the decode speed).

``IdleCores`` measures idle cores system-wide between two calls (one read of ``/proc/stat``
through psutil, about 20 µs); ``idle_cores`` reads the same from a host snapshot's per-core load.
``BusyPace`` turns either into a decision with hysteresis: the CPU is *saturated* when fewer than
``enter_idle`` cores were idle over the last window, and calm again only above ``leave_idle``, so
the app's own lower cost cannot make it flip back. Its ``interval_s`` is then ``busy_interval_s``
instead of ``normal_interval_s``. The chat pane uses it for both the screen updates and the reads of
the HTTP stream (``core/chat/session.py``); the app shows the live tiles less often with it
(``ui/control/metrics.py``). Knows nothing of Textual.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import psutil

from coder_tui.core.metrics.host import idle_seconds

ENTER_IDLE_CORES = 0.5
LEAVE_IDLE_CORES = 1.0
MIN_WINDOW_S = 0.15


def idle_cores(busy_percent_per_core: Sequence[float]) -> float:
    """Idle cores, as a number of cores, from each core's busy percentage."""
    return sum(max(0.0, 100.0 - p) for p in busy_percent_per_core) / 100.0


class IdleCores:
    """Idle cores (system-wide, as a number of cores) over the time since the previous ``sample``."""

    def __init__(
        self,
        cpu_times: Callable[[], Any] = psutil.cpu_times,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cpu_times = cpu_times
        self._clock = clock
        self._prev = (clock(), idle_seconds(cpu_times()))

    def elapsed_s(self) -> float:
        """Seconds since the previous sample (or since construction)."""
        return self._clock() - self._prev[0]

    def sample(self) -> float | None:
        """Idle cores since the previous call; ``None`` when no time has passed."""
        now, idle = self._clock(), idle_seconds(self._cpu_times())
        then, idle_then = self._prev
        self._prev = (now, idle)
        if now <= then:
            return None
        return max(0.0, (idle - idle_then) / (now - then))


class BusyPace:
    """``interval_s`` for screen updates: ``busy_interval_s`` while no core is idle.

    Call ``check()`` as often as convenient; it samples at most once per ``MIN_WINDOW_S`` and says
    whether ``saturated`` changed. ``busy_interval_s`` of 0 turns the slowing off."""

    def __init__(
        self,
        busy_interval_s: float,
        normal_interval_s: float = 0.1,
        idle: IdleCores | None = None,
        *,
        enter_idle: float = ENTER_IDLE_CORES,
        leave_idle: float = LEAVE_IDLE_CORES,
    ) -> None:
        self.busy_interval_s = busy_interval_s
        self.normal_interval_s = normal_interval_s
        self._idle = idle or IdleCores()
        self._enter = enter_idle
        self._leave = leave_idle
        self.saturated = False
        self.last_idle_cores: float | None = None
        self._server_busy = False
        """Whether the server was working at the previous ``observe`` that said."""
        self._busy_saturates = False
        """Whether the server's last work, seen over a whole window, left no core idle."""

    @property
    def interval_s(self) -> float:
        if self.saturated and self.busy_interval_s > 0:
            return max(self.busy_interval_s, self.normal_interval_s)
        return self.normal_interval_s

    def restart_window(self) -> None:
        """Start a fresh measuring window now (at the start of a reply: time between replies,
        when the server was idle, says nothing about the reply's own load)."""
        self._idle.sample()

    def check(self) -> bool:
        """Sample if the window is long enough; True when ``saturated`` changed."""
        if self.busy_interval_s <= 0 or self._idle.elapsed_s() < MIN_WINDOW_S:
            return False
        idle = self._idle.sample()
        return False if idle is None else self.observe(idle)

    def observe(self, idle: float, server_busy: bool | None = None) -> bool:
        """Take one measurement of idle cores (from any source); True when ``saturated`` changed.

        ``server_busy``: whether llama-server is working on a request now (None: not known).
        The window in which a request starts is partly idle, so it alone would keep the fast
        pace for one more window; when the server's previous work, seen over a whole window
        (busy at both ends), left no core idle, a start is taken as saturated at once. The next
        window says whether that holds."""
        if self.busy_interval_s <= 0:
            return False
        self.last_idle_cores = idle
        was = self.saturated
        starts = bool(server_busy) and not self._server_busy
        if (starts and self._busy_saturates) or idle < self._enter:
            self.saturated = True
        elif idle > self._leave:
            self.saturated = False
        if server_busy is not None:
            if server_busy and self._server_busy:
                self._busy_saturates = self.saturated
            self._server_busy = server_busy
        return self.saturated != was
