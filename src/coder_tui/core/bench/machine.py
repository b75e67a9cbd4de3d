"""What a run records about the machine and each profile: hardware, versions, file size, layers.

Owns ``probe_machine`` (GPU through ``metrics.gpu.GpuProbe``, CPU and RAM through psutil and
``/proc/cpuinfo``) and ``bench_profile`` (model file size, layer counts from ``gguf_layout``, the
placement of ``metrics.moe``). Probes never raise: unknown values are ``None``.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from pathlib import Path

import psutil

from coder_tui import __version__
from coder_tui.core.bench.types import BenchProfile, Machine
from coder_tui.core.config.loader import Profile
from coder_tui.core.errors import UserError
from coder_tui.core.gguf.layout import read_layout
from coder_tui.core.metrics.gpu import GpuProbe
from coder_tui.core.metrics.moe import placement_for_profile
from coder_tui.core.metrics.types import NO_GPU
from coder_tui.core.units import format_size


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def probe_gpu(probe: GpuProbe | None = None) -> tuple[str, str | None, int | None]:
    """(description, driver, total VRAM bytes); the description is ``no NVIDIA GPU`` without one."""
    probe = probe or GpuProbe()
    try:
        snap = probe.sample()
    except Exception:
        return NO_GPU, None, None
    finally:
        probe.close()
    if not snap.available or not snap.devices:
        return snap.reason or NO_GPU, None, None
    names = []
    total = 0
    for dev in snap.devices:
        vram = dev.vram_total_bytes
        total += vram or 0
        names.append(f"{dev.name or 'GPU'}" + (f" {format_size(vram, digits=0)}" if vram else ""))
    return ", ".join(names), snap.driver_version, total or None


def probe_machine(llama_server_version: str | None, probe: GpuProbe | None = None) -> Machine:
    """This machine now, with the llama-server version the caller found."""
    gpu, driver, vram = probe_gpu(probe)
    try:
        ram: int | None = int(psutil.virtual_memory().total)
    except Exception:
        ram = None
    return Machine(
        gpu=gpu,
        gpu_driver=driver,
        vram_total_bytes=vram,
        cpu_model=_cpu_model(),
        cpu_cores=psutil.cpu_count(logical=False),
        cpu_threads=psutil.cpu_count(logical=True),
        ram_total_bytes=ram,
        os=platform.platform(),
        llama_server_version=llama_server_version,
        coder_tui_version=__version__,
    )


def bench_profile(profile: Profile, argv: Sequence[str], *, has_gpu: bool) -> BenchProfile:
    """The seed's per-profile facts: file size, GPU layers of all layers, CPU-MoE layers."""
    path = Path(profile.model)
    try:
        size: int | None = path.stat().st_size
    except OSError:
        size = None
    n_layers = gpu_layers = cpu_moe = None
    try:
        layout = read_layout(path)
    except (UserError, OSError, ValueError):
        layout = None
    if layout is not None:
        where = placement_for_profile(layout, profile, has_gpu=has_gpu)
        n_layers = where.n_layers
        gpu_layers = len(where.gpu_layers) if has_gpu else 0
        cpu_moe = len(where.cpu_expert_layers)
    return BenchProfile(
        name=profile.name,
        model_path=str(path),
        model_size_bytes=size,
        n_layers=n_layers,
        gpu_layers=gpu_layers,
        cpu_moe_layers=cpu_moe,
        argv=tuple(argv),
    )
