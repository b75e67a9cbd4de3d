"""HostProbe: CPU, memory, swap rates and the watched process, on this machine's psutil."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path
from typing import Any

import psutil
import pytest

from coder_tui.core.metrics import host as host_mod
from coder_tui.core.metrics import procfs
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


@pytest.mark.parametrize("procfs_works", [True, False])
def test_swapping_flag(monkeypatch: pytest.MonkeyPatch, procfs_works: bool) -> None:
    Swap = namedtuple("Swap", "total used free percent sin sout")
    values = iter([Swap(8, 1, 7, 12.5, 0, 0), Swap(8, 2, 6, 25.0, 64 << 20, 0)])
    if procfs_works:
        ios = iter([(0, 0), (64 << 20, 0)])
        monkeypatch.setattr(procfs, "read_swap_io", lambda: next(ios))
    else:
        monkeypatch.setattr(procfs, "read_swap_io", lambda: None)
        monkeypatch.setattr(procfs, "read_memory", lambda: None)
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


def test_procfs_agrees_with_psutil() -> None:
    """The direct /proc reads give psutil's numbers (RAM and process sizes move a little)."""
    cores = procfs.read_cpu_times()
    ps = psutil.cpu_times(percpu=True)
    assert cores is not None and len(cores) == len(ps)
    for (total, idle), t in zip(cores, ps, strict=True):
        assert total == pytest.approx(sum(t) - t.guest - t.guest_nice, abs=0.5)
        assert idle == pytest.approx(t.idle + t.iowait, abs=0.5)
    mem, vm, sw = procfs.read_memory(), psutil.virtual_memory(), psutil.swap_memory()
    assert mem is not None and mem[0] == vm.total and mem[2] == sw.total
    assert mem[1] == pytest.approx(vm.available, rel=0.05)
    assert procfs.read_swap_io() == (sw.sin, sw.sout)
    me = procfs.read_process(os.getpid())
    proc = psutil.Process()
    assert me is not None and me[0] in "RS" and me[2] == proc.num_threads()
    assert me[1] == pytest.approx(sum(proc.cpu_times()[:2]), abs=0.1)
    assert me[3] == pytest.approx(proc.memory_info().rss, rel=0.2)


def test_procfs_parsing_odd_and_broken_files(tmp_path: Path) -> None:
    (tmp_path / "42").mkdir()
    fields = " ".join(["S", *map(str, range(4, 60))])
    (tmp_path / "42" / "stat").write_text(f"42 (we) ird (name) {fields}\n")
    state, cpu_s, threads, rss, start = procfs.read_process(42, str(tmp_path)) or ("", 0, 0, 0, 0)
    assert state == "S" and cpu_s == (14 + 15) / procfs.CLOCK_TICKS and threads == 20
    assert start == 22 and rss == 24 * procfs.PAGE_BYTES
    (tmp_path / "stat").write_text("cpu  1 2 3 4 5 6 7 8 9 10\ncpu0 1 1 1 5 1 0 0 1\nintr 1\n")
    assert procfs.read_cpu_times(str(tmp_path)) == [
        (10 / procfs.CLOCK_TICKS, 6 / procfs.CLOCK_TICKS)
    ]
    (tmp_path / "meminfo").write_text("MemTotal: 10 kB\nMemFree: 1 kB\n")  # no MemAvailable
    (tmp_path / "vmstat").write_text("nr_free 1\npswpin x\npswpout 2\n")
    assert procfs.read_memory(str(tmp_path)) is None
    assert procfs.read_swap_io(str(tmp_path)) is None
    assert procfs.read_process(43, str(tmp_path)) is None
    (tmp_path / "42" / "stat").write_text("42 (x) S 1 2")
    assert procfs.read_process(42, str(tmp_path)) is None
    empty = tmp_path / "empty"
    empty.mkdir()
    assert procfs.read_cpu_times(str(empty)) is None


def test_without_procfs_psutil_gives_the_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("read_cpu_times", "read_memory", "read_swap_io", "read_process"):
        monkeypatch.setattr(procfs, name, lambda *_a: None)
    probe = HostProbe()
    probe.watch(os.getpid())
    probe.sample()
    s = probe.sample()
    assert s.cpu_percent is not None and 0 < s.ram_used_bytes < s.ram_total_bytes
    assert s.server is not None and s.server.alive and s.server.cpu_percent is not None


def test_a_reused_pid_is_not_the_watched_process(monkeypatch: pytest.MonkeyPatch) -> None:
    probe = HostProbe()
    probe.watch(os.getpid())
    assert probe.sample().server.alive  # type: ignore[union-attr]
    real = procfs.read_process
    monkeypatch.setattr(
        procfs, "read_process", lambda pid: (lambda r: r and (*r[:4], r[4] + 1))(real(pid))
    )
    assert not probe.sample().server.alive  # type: ignore[union-attr]
