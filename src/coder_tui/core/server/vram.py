"""Waiting for a stopped llama-server's VRAM to come back, read through NVML (``GpuProbe``).

Owns the two reads a hot-swap needs: the baseline (each device's used memory before a server
starts) and the wait after a stop until the old process is gone from every device's compute
processes and used memory is back within a tolerance of that baseline. Nothing here raises: no
probe, no driver or no device is a ``VramRelease`` with ``status="skipped"`` and the reason; a wait
that runs out is ``status="timeout"`` with what was still held. Sampling is ``GpuProbe``'s
(``metrics/gpu.py``); what to do after a timeout is the caller's (``swap.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from coder_tui.core.metrics.gpu import GpuProbe
from coder_tui.core.metrics.types import GpuSnapshot
from coder_tui.core.units import format_size

VRAM_TOLERANCE_BYTES = 256 << 20
"""How far above its baseline a device may stay and still count as released: the CUDA context of
another process, the driver's own bookkeeping and allocator caches move by tens of MiB."""

VramStatus = Literal["released", "skipped", "timeout"]


@dataclass(frozen=True)
class VramBaseline:
    """Used VRAM per device index, read before a server started."""

    used_bytes: tuple[tuple[int, int], ...]
    """``(device index, used bytes)`` for every device that answered."""
    at: float
    """``time.time()`` of the reading."""


@dataclass(frozen=True)
class VramRelease:
    """How the wait for a stopped server's VRAM ended."""

    status: VramStatus
    waited_s: float
    reason: str | None = None
    """Why it was skipped, or what was still held at the timeout."""
    baseline_bytes: int | None = None
    """Sum of the baseline over the devices (``None``: no baseline known)."""
    used_bytes: int | None = None
    """Sum of used VRAM over the devices at the end of the wait."""


def _used(snapshot: GpuSnapshot) -> dict[int, int]:
    return {
        d.index: d.vram_used_bytes
        for d in snapshot.devices
        if not d.lost and d.vram_used_bytes is not None
    }


async def read_baseline(probe: GpuProbe | None) -> VramBaseline | None:
    """Each device's used VRAM now, or ``None`` without a usable GPU."""
    if probe is None:
        return None
    snapshot = await asyncio.to_thread(probe.sample)
    used = _used(snapshot)
    if not snapshot.available or not used:
        return None
    return VramBaseline(tuple(sorted(used.items())), time.time())


async def wait_released(
    probe: GpuProbe | None,
    pids: Collection[int],
    baseline: VramBaseline | None,
    *,
    timeout_s: float,
    poll_s: float = 0.05,
    tolerance_bytes: int = VRAM_TOLERANCE_BYTES,
) -> VramRelease:
    """Poll until no device lists ``pids`` and used VRAM is within ``tolerance_bytes`` of
    ``baseline`` on every device (the second test only when a baseline is known).

    A process whose VRAM NVML cannot attribute (``usedGpuMemory`` unknown) counts as released by
    the first test; the baseline test still holds the wait until the memory is back.
    """
    start = time.monotonic()
    if probe is None:
        return VramRelease("skipped", 0.0, "no GPU probe")
    pid_set = frozenset(pids)
    base = dict(baseline.used_bytes) if baseline is not None else {}
    base_total = sum(base.values()) if baseline is not None else None
    while True:
        snapshot = await asyncio.to_thread(probe.sample, pid_set)
        waited = time.monotonic() - start
        if not snapshot.available:
            return VramRelease("skipped", waited, snapshot.reason or "no GPU")
        used = _used(snapshot)
        held = sum(d.server_vram_bytes or 0 for d in snapshot.devices if not d.lost)
        over = {
            i: used[i] - b for i, b in base.items() if i in used and used[i] - b > tolerance_bytes
        }
        if held == 0 and not over:
            return VramRelease("released", waited, None, base_total, sum(used.values()))
        if waited >= timeout_s:
            parts = []
            if held:
                parts.append(f"the old server still holds {format_size(held)}")
            for i, extra in sorted(over.items()):
                parts.append(f"GPU {i} is {format_size(extra)} above its baseline")
            return VramRelease(
                "timeout",
                waited,
                f"VRAM not released after {timeout_s:g} s: " + "; ".join(parts),
                base_total,
                sum(used.values()),
            )
        await asyncio.sleep(poll_s)
