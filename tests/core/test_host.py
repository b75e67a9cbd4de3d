"""HostProbe: CPU, memory, swap rates and the watched process, on this machine's psutil."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import namedtuple
from typing import Any

import psutil
import pytest

from coder_tui.core.metrics import host as host_mod
from coder_tui.core.metrics.host import HostProbe


def test_sample_fields() -> None:
    probe = HostProbe()
    time.sleep(0.02)
    s = probe.sample()
    assert len(s.cpu_percent_per_core) == psutil.cpu_count()
    assert s.cpu_percent is not None and 0 <= s.cpu_percent <= 100
    assert 0 < s.ram_used_bytes < s.ram_total_bytes
    assert s.ram_available_bytes > 0 and s.swap_total_bytes >= 0
    assert s.swap_in_bytes_per_s is None and not s.swapping  # no interval yet
    assert s.server is None
    s2 = probe.sample()
    assert s2.swap_in_bytes_per_s is not None and s2.swap_in_bytes_per_s >= 0


def test_swapping_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    Swap = namedtuple("Swap", "total used free percent sin sout")
    values = iter([Swap(8, 1, 7, 12.5, 0, 0), Swap(8, 2, 6, 25.0, 64 << 20, 0)])
    monkeypatch.setattr(psutil, "swap_memory", lambda: next(values))
    probe = HostProbe()
    probe.sample()
    time.sleep(0.05)
    s = probe.sample()
    assert s.swapping and s.swap_in_bytes_per_s is not None and s.swap_in_bytes_per_s > 1 << 20


def test_watched_process_and_children() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        probe = HostProbe()
        probe.watch(os.getpid())
        first = probe.sample().server
        assert first is not None and first.alive and first.cpu_percent is None
        assert first.rss_bytes and first.threads and first.threads >= 1
        second = probe.sample().server
        assert second is not None and second.cpu_percent is not None
        assert {os.getpid(), child.pid} <= probe.process_tree()
    finally:
        child.kill()
        child.wait()


def test_never_walks_memory_maps(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("memory_full_info/memory_maps must not be called")

    monkeypatch.setattr(psutil.Process, "memory_full_info", forbidden)
    monkeypatch.setattr(psutil.Process, "memory_maps", forbidden)
    probe = HostProbe()
    probe.watch(os.getpid())
    probe.sample()
    probe.sample()


def test_gone_process() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    probe = HostProbe()
    probe.watch(proc.pid)
    s = probe.sample().server
    assert s is not None and not s.alive and s.rss_bytes is None
    probe.watch(None)
    assert probe.sample().server is None and probe.process_tree() == frozenset()


def test_busy_percent_math() -> None:
    assert host_mod._busy_percent((100.0, 50.0), (110.0, 55.0)) == 50.0
    assert host_mod._busy_percent((1.0, 1.0), (1.0, 1.0)) == 0.0
