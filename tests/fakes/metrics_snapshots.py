"""Metrics snapshots for screen tests: a generating server with or without a GPU, and a MoE model.

``snapshot`` is one sampler tick (host, server, speeds and a short history, as the bus makes
them) on ``ONE_GPU`` (an RTX 4090 at 23.5 of 24 GiB, PCIe 4.0 x16) or ``NO_GPU``;
``moe_snapshot`` adds a MoE model with two layers of experts in RAM (1003.8 KiB a token) and the
sampler's 10-minute history window.
"""

from __future__ import annotations

from dataclasses import replace

from coder_tui.core.metrics.series import History
from coder_tui.core.metrics.speeds import RunSpeeds
from coder_tui.core.metrics.types import (
    Bound,
    GpuDeviceSample,
    GpuSnapshot,
    HostSnapshot,
    MetricsSnapshot,
    MoeSample,
    Placement,
    ProcessSample,
    ServerPhase,
    ServerSample,
    TokenTraffic,
)

GIB = 2**30


def snapshot(
    gpu: GpuSnapshot, phase: ServerPhase = ServerPhase.GENERATING, busy: float | None = None
) -> MetricsSnapshot:
    host = HostSnapshot(
        cpu_percent=50.0,
        cpu_percent_per_core=(50.0, 50.0),
        ram_total_bytes=64 * GIB,
        ram_used_bytes=40 * GIB,
        ram_available_bytes=24 * GIB,
        swap_total_bytes=0,
        swap_used_bytes=0,
        swap_in_bytes_per_s=0.0,
        swap_out_bytes_per_s=0.0,
        swapping=False,
        server=ProcessSample(pid=1, alive=True, cpu_percent=1450.0, rss_bytes=30 * GIB, threads=17),
    )
    server = ServerSample(
        phase=phase,
        generation_tokens_per_s=21.78 if phase is ServerPhase.GENERATING else 0.0,
        generation_tokens_per_busy_s=busy,
        prompt_tokens_per_s=0.0,
        kv_fill_ratio=0.25,
        kv_used_tokens=50_000,
    )
    speeds = RunSpeeds().update(server)  # as the bus makes them, and appends ``now`` after
    history = History(300, 1)
    for v in (10.0, 20.0, speeds.generation.now_tokens_per_s):
        history.append("generation_tokens_per_s", v)
    history.append("prompt_tokens_per_s", speeds.prompt.now_tokens_per_s)
    return MetricsSnapshot(
        time_s=0.0, gpu=gpu, host=host, server=server, moe=None, history=history, speeds=speeds
    )


NO_GPU = GpuSnapshot(available=False, reason="no NVIDIA GPU")
ONE_GPU = GpuSnapshot(
    available=True,
    devices=(
        GpuDeviceSample(
            index=0,
            name="NVIDIA GeForce RTX 4090",
            vram_total_bytes=24 * GIB,
            vram_used_bytes=int(23.5 * GIB),
            server_vram_bytes=22 * GIB,
            gpu_util_percent=87.0,
            power_w=310.0,
            temperature_c=66.0,
            pcie_gen=4,
            pcie_width=16,
            pcie_link_bytes_per_s=31.5e9,
            pcie_rx_bytes_per_s=5.2e9,
            pcie_tx_bytes_per_s=0.1e9,
        ),
    ),
)


def moe_snapshot() -> MetricsSnapshot:
    """``snapshot(ONE_GPU)`` with a MoE model: two layers of experts in RAM, 1003.8 KiB a token."""
    placement = Placement(
        n_layers=2, gpu_layers=(0, 1), output_on_gpu=True, cpu_expert_layers=(0, 1), has_gpu=True
    )
    traffic = TokenTraffic(
        ram_bytes_per_token=int(1003.8 * 1024),
        vram_bytes_per_token=0,
        ram_expert_bytes_per_token=int(1003.8 * 1024),
        ram_weight_bytes=0,
        vram_weight_bytes=0,
        prompt_pcie_bytes_per_ubatch=0,
    )
    moe = MoeSample(
        placement=placement,
        traffic=traffic,
        ram_bandwidth_bytes_per_s=50e9,
        vram_bandwidth_bytes_per_s=1e12,
        decode_ceiling_tokens_per_s=48.0,
        generation_tokens_per_s=21.8,
        ram_read_bytes_per_s=22.4e6,
        vram_read_bytes_per_s=None,
        efficiency=0.45,
        bound=Bound.RAM_BANDWIDTH,
    )
    snap = snapshot(ONE_GPU)
    history = History(600, 1)  # the sampler's window: 10 minutes
    for v in (10.0, 20.0, snap.speeds.generation.now_tokens_per_s):
        history.append("generation_tokens_per_s", v)
    history.append("prompt_tokens_per_s", snap.speeds.prompt.now_tokens_per_s)
    return replace(snap, moe=moe, history=history)
