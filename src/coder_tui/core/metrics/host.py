"""This machine through psutil: CPU per core, RAM, swap traffic, and the server process.

Owns ``HostProbe``: cheap reads only (``/proc/stat``, ``/proc/meminfo``, ``/proc/vmstat`` and one
``oneshot()`` of the server process, whose ``psutil.Process`` object is kept between samples).
``memory_full_info`` and ``memory_maps`` are never called: they walk every mapping of the process,
milliseconds per GB of a model's RSS. Rates come from the previous sample. Scheduling is ``bus``'s.
"""

from __future__ import annotations

import time
from typing import Any

import psutil

from coder_tui.core.metrics.types import HostSnapshot, ProcessSample

SWAPPING_BYTES_PER_S = 1 << 20
"""Swap in + out above this (1 MiB/s) counts as swapping: an offloaded MoE model thrashes."""
CHILDREN_REFRESH_S = 10.0


def idle_seconds(times: Any) -> float:
    """Idle seconds of a ``psutil.cpu_times()`` result, iowait included (a core waiting on I/O
    is free to run something else)."""
    return float(times.idle + getattr(times, "iowait", 0.0))


def _cpu_times() -> list[tuple[float, float]]:
    """(total, idle) seconds per core; guest time is already inside user time on Linux."""
    out = []
    for t in psutil.cpu_times(percpu=True):
        total = sum(t) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)
        out.append((total, idle_seconds(t)))
    return out


def _busy_percent(before: tuple[float, float], after: tuple[float, float]) -> float:
    total, idle = after[0] - before[0], after[1] - before[1]
    if total <= 0:
        return 0.0
    return min(100.0, max(0.0, 100.0 * (1.0 - idle / total)))


class HostProbe:
    """Samples the host; ``watch(pid)`` selects the server process (its children for the GPU)."""

    def __init__(self) -> None:
        self._pid: int | None = None
        self._proc: psutil.Process | None = None
        self._proc_primed = False
        self._tree: frozenset[int] = frozenset()
        self._tree_at = 0.0
        self._swap_prev: tuple[float, int, int] | None = None
        # Own CPU-time baseline: psutil.cpu_percent keeps one global baseline for all callers.
        self._cpu_prev = _cpu_times()

    def watch(self, pid: int | None) -> None:
        """Follow process ``pid`` from now on (``None``: no server)."""
        if pid == self._pid:
            return
        self._pid = pid
        self._proc = None
        self._proc_primed = False
        self._tree = frozenset()
        self._tree_at = 0.0
        if pid is not None:
            try:
                self._proc = psutil.Process(pid)
            except psutil.Error:
                self._proc = None

    def process_tree(self) -> frozenset[int]:
        """The watched pid and its descendants (refreshed every ``CHILDREN_REFRESH_S``)."""
        if self._pid is None:
            return frozenset()
        now = time.monotonic()
        if self._proc is not None and (not self._tree or now - self._tree_at > CHILDREN_REFRESH_S):
            self._tree_at = now
            try:  # children() scans every process: keep it rare
                kids = self._proc.children(recursive=True)
                self._tree = frozenset({self._pid, *(k.pid for k in kids)})
            except psutil.Error:
                self._tree = frozenset({self._pid})
        return self._tree or frozenset({self._pid})

    def sample(self) -> HostSnapshot:
        """CPU since the last sample, memory now, swap rates since the last sample."""
        cpu_now = _cpu_times()
        per_core = tuple(_busy_percent(a, b) for a, b in zip(self._cpu_prev, cpu_now, strict=False))
        self._cpu_prev = cpu_now
        vm = psutil.virtual_memory()
        sw = psutil.swap_memory()
        now = time.monotonic()
        swap_in = swap_out = None
        if self._swap_prev is not None:
            t0, sin0, sout0 = self._swap_prev
            dt = now - t0
            if dt > 0:
                swap_in = max(0.0, (sw.sin - sin0) / dt)
                swap_out = max(0.0, (sw.sout - sout0) / dt)
        self._swap_prev = (now, int(sw.sin), int(sw.sout))
        return HostSnapshot(
            cpu_percent=sum(per_core) / len(per_core) if per_core else None,
            cpu_percent_per_core=per_core,
            ram_total_bytes=int(vm.total),
            ram_used_bytes=int(vm.total - vm.available),
            ram_available_bytes=int(vm.available),
            swap_total_bytes=int(sw.total),
            swap_used_bytes=int(sw.used),
            swap_in_bytes_per_s=swap_in,
            swap_out_bytes_per_s=swap_out,
            swapping=(swap_in or 0.0) + (swap_out or 0.0) >= SWAPPING_BYTES_PER_S,
            server=self._process(),
        )

    def _process(self) -> ProcessSample | None:
        if self._pid is None:
            return None
        proc = self._proc
        if proc is None:
            return ProcessSample(pid=self._pid, alive=False)
        try:
            with proc.oneshot():
                cpu = proc.cpu_percent(None)
                rss = proc.memory_info().rss
                threads = proc.num_threads()
                zombie = proc.status() == psutil.STATUS_ZOMBIE
        except psutil.Error:
            return ProcessSample(pid=self._pid, alive=False)
        if zombie:
            return ProcessSample(pid=self._pid, alive=False)
        primed, self._proc_primed = self._proc_primed, True
        return ProcessSample(
            pid=self._pid,
            alive=True,
            cpu_percent=float(cpu) if primed else None,
            rss_bytes=int(rss),
            threads=int(threads),
        )
