"""Frozen samples the metrics samplers produce: units in field names, ``None`` where unknown.

Owns the data shapes only (GPU, host, server, MoE traffic and the combined ``MetricsSnapshot``);
taking the samples belongs to ``gpu``, ``host``, ``server`` and ``moe``, scheduling them to ``bus``,
and every threshold, colour or unit formatting to the UI.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from coder_tui.core.metrics.series import History

NO_GPU = "no NVIDIA GPU"
"""``GpuSnapshot.reason`` when there is no NVIDIA driver, library or device."""


# -- GPU -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GpuDeviceSample:
    """One NVIDIA device at one moment. ``lost`` devices carry only their index and name."""

    index: int
    name: str | None = None
    uuid: str | None = None
    lost: bool = False
    """NVML stopped answering for this device (fell off the bus, Xid 79...)."""
    vram_total_bytes: int | None = None
    vram_used_bytes: int | None = None
    vram_free_bytes: int | None = None
    server_vram_bytes: int | None = None
    """VRAM held by the watched llama-server and its children (``None``: no pid or unknown)."""
    gpu_util_percent: float | None = None
    mem_util_percent: float | None = None
    """Memory-controller utilisation (share of time VRAM was being read or written)."""
    power_w: float | None = None
    power_limit_w: float | None = None
    temperature_c: float | None = None
    sm_clock_mhz: int | None = None
    mem_clock_mhz: int | None = None
    mem_clock_max_mhz: int | None = None
    memory_bus_width_bits: int | None = None
    vram_bandwidth_bytes_per_s: float | None = None
    """Peak VRAM bandwidth: max memory clock × bus width / 8 × 2 (double data rate)."""
    pcie_gen: int | None = None
    pcie_width: int | None = None
    pcie_gen_max: int | None = None
    pcie_width_max: int | None = None
    pcie_link_bytes_per_s: float | None = None
    """One direction of the link at its current generation and width."""
    pcie_link_max_bytes_per_s: float | None = None
    pcie_rx_bytes_per_s: float | None = None
    """Host to GPU, averaged over the sample interval (``None``: no PCIe reading yet)."""
    pcie_tx_bytes_per_s: float | None = None
    """GPU to host, averaged over the sample interval."""


@dataclass(frozen=True)
class GpuSnapshot:
    """Every NVIDIA device, or why there are none (``available`` false, ``reason`` set)."""

    available: bool
    reason: str | None = None
    devices: tuple[GpuDeviceSample, ...] = ()
    driver_version: str | None = None


# -- host ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProcessSample:
    """The watched server process; ``alive`` false once it has gone."""

    pid: int
    alive: bool
    cpu_percent: float | None = None
    """Share of one core (can exceed 100); ``None`` on the first sample, which has no interval."""
    rss_bytes: int | None = None
    threads: int | None = None


@dataclass(frozen=True)
class HostSnapshot:
    """CPU, RAM and swap of this machine, plus the server process when a pid is watched."""

    cpu_percent: float | None
    """Mean over all cores since the previous sample."""
    cpu_percent_per_core: tuple[float, ...]
    ram_total_bytes: int
    ram_used_bytes: int
    ram_available_bytes: int
    swap_total_bytes: int
    swap_used_bytes: int
    swap_in_bytes_per_s: float | None
    swap_out_bytes_per_s: float | None
    swapping: bool
    """Pages moved to or from swap at a rate that matters (see ``host.SWAPPING_BYTES_PER_S``)."""
    server: ProcessSample | None = None


# -- server --------------------------------------------------------------------------------------
class ServerPhase(enum.Enum):
    """What llama-server is doing, as far as its HTTP endpoints tell."""

    DOWN = "down"
    LOADING = "loading"
    IDLE = "idle"
    PROMPT = "prompt"
    GENERATING = "generating"


@dataclass(frozen=True)
class SlotSample:
    """One ``/slots`` entry. Context counts include cached tokens kept after a request ends."""

    id: int
    n_ctx: int | None
    is_processing: bool
    phase: ServerPhase
    task_id: int | None = None
    context_tokens: int | None = None
    """Tokens in this slot's KV cache (prompt and generated so far)."""
    prompt_tokens_processed: int | None = None
    prompt_tokens_cached: int | None = None
    tokens_decoded: int | None = None
    remaining_tokens: int | None = None
    """Tokens left before ``max_tokens`` (-1: no limit)."""
    kv_fill_ratio: float | None = None


@dataclass(frozen=True)
class ServerSample:
    """Speeds over the last interval, counters, and slot states from ``/metrics`` and ``/slots``."""

    phase: ServerPhase
    interval_s: float | None = None
    metrics_available: bool = False
    slots_available: bool = False
    error: str | None = None
    prompt_tokens_per_s: float | None = None
    """Prompt tokens processed per wall second over the interval."""
    prompt_tokens_per_busy_s: float | None = None
    """Prompt tokens per second of prompt processing (the server's prompt_per_second)."""
    generation_tokens_per_s: float | None = None
    """Tokens generated per wall second over the interval, live (from ``/slots``)."""
    generation_tokens_per_request_s: float | None = None
    """The running request's speed so far: tokens decoded since it was first seen generating,
    per second since then. Steadier than the per-interval rate, and it converges on the server's
    own ``timings.predicted_per_second`` as the request goes on."""
    generation_tokens_per_busy_s: float | None = None
    """Tokens per second of generation for requests that finished in the interval: llama-server
    adds a request's tokens and time to its counters when the request ends, so this matches the
    server's own ``timings.predicted_per_second`` and is ``None`` in intervals where none ended."""
    prompt_tokens_total: int | None = None
    generation_tokens_total: int | None = None
    decode_calls_per_s: float | None = None
    requests_processing: int | None = None
    requests_deferred: int | None = None
    busy_slots: int | None = None
    slots: tuple[SlotSample, ...] = ()
    kv_used_tokens: int | None = None
    kv_fill_ratio: float | None = None
    """Fill of the fullest slot: the one that runs out of context first."""
    counters_restarted: bool = False
    """``/metrics``'s counters went back since the last poll: another server process answers at
    this address (restarted elsewhere), so nothing measured before belongs to it."""


# -- MoE traffic ---------------------------------------------------------------------------------
class Bound(enum.Enum):
    """What limits the server's speed in its current phase."""

    RAM_BANDWIDTH = "ram"
    """Decode with CPU-resident weights: the CPU reads them from RAM for every token."""
    VRAM_BANDWIDTH = "vram"
    """Decode with every weight in VRAM."""
    PCIE = "pcie"
    """Prompt batches of 32+ tokens: CPU-resident weights are copied to the GPU per ubatch."""
    GPU_COMPUTE = "gpu"
    """Prompt processing with every weight already in VRAM."""
    NONE = "none"
    """Idle, down or loading."""


@dataclass(frozen=True)
class Placement:
    """Where llama-server keeps each part of the model for a profile's ``-ngl`` and overrides."""

    n_layers: int
    gpu_layers: tuple[int, ...]
    """Repeating layers whose weights are in VRAM (before tensor overrides)."""
    output_on_gpu: bool
    cpu_expert_layers: tuple[int, ...]
    """Layers whose ``ffn_*_exps`` tensors are in RAM (``--n-cpu-moe``, ``-ot ...=CPU``, CPU layers)."""
    has_gpu: bool
    vram_tensors: frozenset[str] = frozenset()
    """Names of the tensors in VRAM after every override; all others are in RAM."""
    op_offload: bool = True
    """Large prompt batches run on the GPU, copying CPU-resident weights (off: --no-op-offload)."""
    notes: tuple[str, ...] = ()
    """Assumptions made (``-ngl`` unset) and overrides that could not be understood."""


@dataclass(frozen=True)
class TokenTraffic:
    """Weight bytes read per generated token, and copied per prompt ubatch, for one placement."""

    ram_bytes_per_token: int
    vram_bytes_per_token: int
    ram_expert_bytes_per_token: int
    """The part of ``ram_bytes_per_token`` that is CPU-resident experts."""
    ram_weight_bytes: int
    vram_weight_bytes: int
    prompt_pcie_bytes_per_ubatch: int
    """CPU-resident weights copied to the GPU for each ubatch of 32+ tokens (0: none or no GPU)."""


@dataclass(frozen=True)
class MoeSample:
    """The traffic model for the running profile, scaled by the live generation speed."""

    placement: Placement
    traffic: TokenTraffic
    ram_bandwidth_bytes_per_s: float | None
    vram_bandwidth_bytes_per_s: float | None
    decode_ceiling_tokens_per_s: float | None
    """Roofline: 1 / (RAM bytes / RAM bandwidth + VRAM bytes / VRAM bandwidth), per token."""
    generation_tokens_per_s: float | None
    ram_read_bytes_per_s: float | None
    """CPU-resident weight bytes read from RAM per second at the live generation speed."""
    vram_read_bytes_per_s: float | None
    efficiency: float | None
    """Live generation tokens/s over the ceiling (``None`` when not generating)."""
    bound: Bound


# -- speeds, one definition -----------------------------------------------------------------------
@dataclass(frozen=True)
class Speed:
    """Tokens/s of one kind (generation or prompt), as the dashboard shows them."""

    now_tokens_per_s: float | None = None
    """Tokens per wall second over the last sample interval (``None``: not known). This value,
    and no other, is the newest point of the kind's history series (``<kind>_tokens_per_s``):
    a tile's number and its graph agree by construction."""
    request_tokens_per_s: float | None = None
    """The running request's speed so far (generation only; ``None`` when none runs)."""
    last_request_tokens_per_s: float | None = None
    """The last request of this server run that ended: tokens per busy second, as the server's
    own ``timings`` (``None`` until one ends; a new run forgets the previous run's)."""


@dataclass(frozen=True)
class Speeds:
    """Generation and prompt speeds of one tick, for one server run (``speeds.RunSpeeds``)."""

    generation: Speed = Speed()
    prompt: Speed = Speed()
    run: int = 0
    """Which server run of this sampler they belong to (a start, restart or swap is a new one)."""


# -- all of it -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class MetricsSnapshot:
    """One tick of the sampler bus: every source, the MoE model and the ring buffers."""

    time_s: float
    """Wall-clock time of the tick (``time.time()``)."""
    gpu: GpuSnapshot
    host: HostSnapshot | None
    server: ServerSample | None
    moe: MoeSample | None
    history: History
    """Shared, live ring buffers (not frozen): read them on the event loop's thread."""
    moe_error: str | None = None
    """Why ``moe`` is ``None`` although a profile is watched (unreadable model file...)."""
    speeds: Speeds = Speeds()
    """Generation and prompt speeds: the one source of the speed tiles' numbers and graphs."""
