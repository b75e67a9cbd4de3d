"""The busy pace: idle cores from CPU times, hysteresis, the minimum window, and the off switch."""

from __future__ import annotations

from types import SimpleNamespace

from coder_tui.core.chat.pacing import MIN_WINDOW_S, BusyPace, IdleCores


class FakeCpu:
    """A clock and ``cpu_times`` that advance together: ``run(seconds, idle_cores)``."""

    def __init__(self) -> None:
        self.now = 100.0
        self.idle = 5000.0
        self.iowait = 10.0

    def clock(self) -> float:
        return self.now

    def times(self) -> SimpleNamespace:
        return SimpleNamespace(idle=self.idle, iowait=self.iowait, user=1.0, system=1.0)

    def run(self, seconds: float, idle_cores: float, iowait_cores: float = 0.0) -> None:
        self.now += seconds
        self.idle += seconds * idle_cores
        self.iowait += seconds * iowait_cores

    def pace(self, busy_s: float = 1.0) -> BusyPace:
        return BusyPace(busy_s, 0.1, IdleCores(self.times, self.clock))


def test_idle_cores_counts_idle_and_iowait_over_the_window() -> None:
    cpu = FakeCpu()
    idle = IdleCores(cpu.times, cpu.clock)
    cpu.run(2.0, idle_cores=1.5, iowait_cores=0.25)
    assert idle.sample() == 1.75
    assert idle.sample() is None  # no time passed
    cpu.run(0.5, idle_cores=0.0)
    assert idle.sample() == 0.0


def test_real_psutil_reading_is_a_number_of_cores() -> None:
    import os
    import time

    idle = IdleCores()
    time.sleep(0.05)
    value = idle.sample()
    assert value is not None and 0.0 <= value <= (os.cpu_count() or 1) + 0.5


def test_saturation_enters_below_half_a_core_and_leaves_above_one() -> None:
    cpu = FakeCpu()
    pace = cpu.pace()
    assert not pace.saturated and pace.interval_s == 0.1
    cpu.run(0.5, idle_cores=0.2)
    assert pace.check() is True and pace.saturated and pace.interval_s == 1.0
    assert pace.last_idle_cores is not None and abs(pace.last_idle_cores - 0.2) < 1e-9
    cpu.run(0.5, idle_cores=0.8)  # between the thresholds: the state holds
    assert pace.check() is False and pace.saturated
    cpu.run(0.5, idle_cores=1.2)
    assert pace.check() is True and not pace.saturated and pace.interval_s == 0.1
    cpu.run(0.5, idle_cores=0.8)
    assert pace.check() is False and not pace.saturated


def test_no_sample_inside_the_minimum_window() -> None:
    cpu = FakeCpu()
    pace = cpu.pace()
    cpu.run(MIN_WINDOW_S / 2, idle_cores=0.0)
    assert pace.check() is False and not pace.saturated
    cpu.run(MIN_WINDOW_S / 2, idle_cores=0.0)
    assert pace.check() is True and pace.saturated


def test_restart_window_forgets_the_quiet_time_before_a_reply() -> None:
    cpu = FakeCpu()
    pace = cpu.pace()
    cpu.run(30.0, idle_cores=2.0)  # idle between replies
    pace.restart_window()
    cpu.run(0.5, idle_cores=0.1)  # the reply saturates the cores
    assert pace.check() is True and pace.saturated


def test_zero_busy_interval_turns_the_slowing_off() -> None:
    cpu = FakeCpu()
    pace = cpu.pace(busy_s=0.0)
    cpu.run(1.0, idle_cores=0.0)
    assert pace.check() is False and not pace.saturated and pace.interval_s == 0.1


def test_busy_interval_is_never_faster_than_normal() -> None:
    cpu = FakeCpu()
    pace = cpu.pace(busy_s=0.05)
    cpu.run(1.0, idle_cores=0.0)
    pace.check()
    assert pace.saturated and pace.interval_s == 0.1


def test_a_request_after_one_that_took_every_core_slows_at_once() -> None:
    """The window a request starts in is partly idle. Once the server's work has been seen
    saturating over a whole window, the next start is saturated at once, not a window later; a
    start that leaves cores idle after all is calm again at the next window."""
    pace = BusyPace(2.0, 1.0)
    assert pace.observe(8.0, server_busy=True) is False  # a start, nothing known yet: idle
    assert pace.observe(0.1, server_busy=True) is True  # a whole window busy: saturated
    assert pace.observe(12.0, server_busy=False) is True and not pace.saturated  # ended
    assert pace.observe(9.0, server_busy=False) is False
    assert pace.observe(7.0, server_busy=True) is True and pace.saturated  # the next start
    assert pace.observe(0.2, server_busy=True) is False and pace.saturated
    assert pace.observe(12.0, server_busy=False) is True
    # A server that works without taking every core: seen so over a window, so no shortcut.
    assert pace.observe(6.0, server_busy=True) is True and pace.saturated
    assert pace.observe(5.0, server_busy=True) is True and not pace.saturated
    assert pace.observe(12.0, server_busy=False) is False
    assert pace.observe(6.0, server_busy=True) is False and not pace.saturated
    # Not known (no server probe): idle cores alone, as before.
    assert pace.observe(6.0) is False and not pace.saturated
