"""The metrics side of the Prometheus exporter: the latest ``MetricsSnapshot`` as metric families.

Owns ``SnapshotCollector`` (a ``prometheus_client`` custom collector that renders whatever snapshot
it was last handed: it never samples by itself, so the TUI's sampler and ``coder-tui export`` feed
the same code), ``render`` and ``ProfileLabels`` (the active profile as labels). The HTTP server
and ``--listen`` checks are ``http``'s; running the samplers is ``metrics.bus``'s.

Names follow Prometheus conventions: one ``coder_tui_`` prefix, base units in the name
(``_bytes``, ``_seconds``, ``_bytes_per_second``, ``_watts``, ``_celsius``), 0-1 shares as
``_ratio``, counters as ``_total``. GPU series carry ``gpu`` (index) and ``gpu_name``; server and
MoE series (and ``gpu_server_memory_bytes``) carry the profile labels (``profile``, ``model``,
``quant``, ``ngl``, ``n_cpu_moe``; empty when unknown). Without a GPU there is
``coder_tui_gpu_available 0`` and no other GPU series. A series whose value is unknown is left
out rather than exported as NaN.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import astuple, dataclass, fields
from pathlib import PurePath
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from coder_tui.core.config.loader import Profile
from coder_tui.core.metrics.types import Bound, MetricsSnapshot, ServerPhase
from coder_tui.core.sanitize import sanitize_line

PREFIX = "coder_tui_"

_QUANT = re.compile(
    r"(?<![A-Za-z0-9])(I?Q[1-8](?:_[0-9A-Z]+)*|BF16|F16|F32|MXFP4)(?![A-Za-z0-9])", re.IGNORECASE
)


@dataclass(frozen=True)
class ProfileLabels:
    """The active profile as Prometheus label values ("" when unknown)."""

    profile: str = ""
    model: str = ""
    """The model file's stem (``Qwen3-Coder-Next-UD-IQ2_XXS``)."""
    quant: str = ""
    """The quant type read from the file name (``IQ2_XXS``, ``Q4_K_M``...)."""
    ngl: str = ""
    n_cpu_moe: str = ""

    @classmethod
    def from_profile(cls, profile: Profile) -> ProfileLabels:
        """Labels for a configured profile (quant from the model's file name)."""
        return cls(
            profile=profile.name,
            model=profile.model.stem,
            quant=quant_of(profile.model.name),
            ngl="" if profile.n_gpu_layers is None else str(profile.n_gpu_layers),
            n_cpu_moe="" if profile.n_cpu_moe is None else str(profile.n_cpu_moe),
        )

    @classmethod
    def from_model_path(cls, path: str, profile: str = "") -> ProfileLabels:
        """Labels for a server known only by its model path (``/props`` of an attached server)."""
        name = PurePath(path).name
        return cls(profile=profile, model=PurePath(path).stem, quant=quant_of(name))

    def names(self) -> list[str]:
        return [f.name for f in fields(self)]

    def values(self) -> list[str]:
        return [str(v) for v in astuple(self)]


def quant_of(file_name: str) -> str:
    """The quant type in a GGUF file name (the last one, upper case), else ""."""
    found = _QUANT.findall(PurePath(file_name).stem)
    return found[-1].upper() if found else ""


_Get = Callable[[Any], float | int | None]
"""Reads one value off a sample (``None``: no series)."""


class _Families:
    """Metric families by name, created on first use, so a series appears only when it has data."""

    def __init__(self) -> None:
        self._by_name: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}

    def gauge(
        self,
        name: str,
        doc: str,
        value: float | None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        if value is None:
            return
        fam = self._by_name.get(name)
        if fam is None:
            fam = GaugeMetricFamily(PREFIX + name, doc, labels=list(labels or {}))
            self._by_name[name] = fam
        fam.add_metric(_label_values(labels), float(value))

    def counter(
        self, name: str, doc: str, value: float | None, labels: Mapping[str, str] | None = None
    ) -> None:
        """``name`` without ``_total`` (prometheus_client appends it)."""
        if value is None:
            return
        fam = self._by_name.get(name)
        if fam is None:
            fam = CounterMetricFamily(PREFIX + name, doc, labels=list(labels or {}))
            self._by_name[name] = fam
        fam.add_metric(_label_values(labels), float(value))

    def table(
        self,
        rows: tuple[tuple[str, str, _Get], ...],
        obj: object,
        labels: Mapping[str, str] | None = None,
        *,
        counter: bool = False,
    ) -> None:
        """One sample per row of ``rows`` (name, help, getter) read from ``obj``."""
        add = self.counter if counter else self.gauge
        for name, doc, get in rows:
            add(name, doc, get(obj), labels)

    def __iter__(self) -> Iterator[Metric]:
        return iter(self._by_name.values())


def _label_values(labels: Mapping[str, str] | None) -> list[str]:
    """Label values from a model, a GGUF or a server, safe to show: controls removed, bidi shown
    (prometheus_client then escapes backslash, quote and newline per the exposition format)."""
    return [sanitize_line(v) for v in (labels or {}).values()]


def _ratio(percent: float | None) -> float | None:
    return None if percent is None else percent / 100.0


class SnapshotCollector(Collector):
    """Renders the last snapshot handed to ``update``; thread-safe (scrapes run on other threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snap: MetricsSnapshot | None = None
        self._labels = ProfileLabels()

    def update(self, snap: MetricsSnapshot, labels: ProfileLabels | None = None) -> None:
        """Serve ``snap`` from now on (and ``labels`` when given: the profile may change)."""
        with self._lock:
            self._snap = snap
            if labels is not None:
                self._labels = labels

    def set_labels(self, labels: ProfileLabels) -> None:
        """A new profile is active (a hot swap): label the next samples with it."""
        with self._lock:
            self._labels = labels

    def describe(self) -> Iterable[Metric]:
        return ()  # no description up front: the registry must not call collect() on register

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            snap, labels = self._snap, self._labels
        if snap is None:
            return []
        return list(render(snap, labels))


_GPU: tuple[tuple[str, str, _Get], ...] = (
    ("gpu_memory_total_bytes", "VRAM of the device.", lambda d: d.vram_total_bytes),
    ("gpu_memory_used_bytes", "VRAM in use on the device.", lambda d: d.vram_used_bytes),
    ("gpu_memory_free_bytes", "VRAM free on the device.", lambda d: d.vram_free_bytes),
    ("gpu_utilization_ratio", "Share of time a kernel ran.", lambda d: _ratio(d.gpu_util_percent)),
    (
        "gpu_memory_utilization_ratio",
        "Share of time VRAM was read or written.",
        lambda d: _ratio(d.mem_util_percent),
    ),
    ("gpu_power_watts", "Power draw.", lambda d: d.power_w),
    ("gpu_power_limit_watts", "Power limit.", lambda d: d.power_limit_w),
    ("gpu_temperature_celsius", "Core temperature.", lambda d: d.temperature_c),
    (
        "gpu_pcie_rx_bytes_per_second",
        "Host to GPU PCIe traffic, averaged over the sample.",
        lambda d: d.pcie_rx_bytes_per_s,
    ),
    (
        "gpu_pcie_tx_bytes_per_second",
        "GPU to host PCIe traffic, averaged over the sample.",
        lambda d: d.pcie_tx_bytes_per_s,
    ),
    (
        "gpu_pcie_link_bytes_per_second",
        "One direction of the PCIe link at its current generation and width.",
        lambda d: d.pcie_link_bytes_per_s,
    ),
    (
        "gpu_memory_bandwidth_bytes_per_second",
        "Peak VRAM bandwidth from the memory clock and bus width.",
        lambda d: d.vram_bandwidth_bytes_per_s,
    ),
)

_HOST: tuple[tuple[str, str, _Get], ...] = (
    ("host_cpu_utilization_ratio", "Mean CPU use over all cores.", lambda h: _ratio(h.cpu_percent)),
    ("host_logical_cpus", "Logical CPUs.", lambda h: len(h.cpu_percent_per_core) or None),
    ("host_memory_total_bytes", "RAM of the machine.", lambda h: h.ram_total_bytes),
    ("host_memory_used_bytes", "RAM in use.", lambda h: h.ram_used_bytes),
    (
        "host_memory_available_bytes",
        "RAM available without swapping.",
        lambda h: h.ram_available_bytes,
    ),
    ("host_swap_total_bytes", "Swap space.", lambda h: h.swap_total_bytes),
    ("host_swap_used_bytes", "Swap in use.", lambda h: h.swap_used_bytes),
    ("host_swap_in_bytes_per_second", "Pages read from swap.", lambda h: h.swap_in_bytes_per_s),
    ("host_swap_out_bytes_per_second", "Pages written to swap.", lambda h: h.swap_out_bytes_per_s),
)

_PROCESS: tuple[tuple[str, str, _Get], ...] = (
    ("server_process_up", "1 while the watched server process lives.", lambda p: float(p.alive)),
    (
        "server_process_cpu_cores",
        "CPU cores the server process kept busy (1.0 = one full core).",
        lambda p: _ratio(p.cpu_percent),
    ),
    (
        "server_process_resident_memory_bytes",
        "Resident memory of the server.",
        lambda p: p.rss_bytes,
    ),
    ("server_process_threads", "Threads of the server.", lambda p: p.threads),
)

_SERVER: tuple[tuple[str, str, _Get], ...] = (
    (
        "server_generation_tokens_per_second",
        "Tokens generated per wall second, live.",
        lambda s: s.generation_tokens_per_s,
    ),
    (
        "server_generation_busy_tokens_per_second",
        "Tokens per second of generation for requests that ended in the interval.",
        lambda s: s.generation_tokens_per_busy_s,
    ),
    (
        "server_prompt_tokens_per_second",
        "Prompt tokens processed per wall second.",
        lambda s: s.prompt_tokens_per_s,
    ),
    (
        "server_prompt_busy_tokens_per_second",
        "Prompt tokens per second of prompt processing.",
        lambda s: s.prompt_tokens_per_busy_s,
    ),
    (
        "server_decode_calls_per_second",
        "llama_decode calls per second.",
        lambda s: s.decode_calls_per_s,
    ),
    ("server_requests_processing", "Requests being processed.", lambda s: s.requests_processing),
    ("server_requests_deferred", "Requests waiting for a slot.", lambda s: s.requests_deferred),
    ("server_busy_slots", "Slots processing a request.", lambda s: s.busy_slots),
    ("server_kv_used_tokens", "Tokens in the KV cache of all slots.", lambda s: s.kv_used_tokens),
    ("server_kv_fill_ratio", "KV fill of the fullest slot.", lambda s: s.kv_fill_ratio),
)

_SERVER_COUNTERS: tuple[tuple[str, str, _Get], ...] = (
    (
        "server_prompt_tokens",
        "Prompt tokens processed (server counter).",
        lambda s: s.prompt_tokens_total,
    ),
    (
        "server_generation_tokens",
        "Tokens generated by ended requests (server counter).",
        lambda s: s.generation_tokens_total,
    ),
)

_MOE: tuple[tuple[str, str, _Get], ...] = (
    (
        "moe_ram_read_bytes_per_second",
        "CPU-resident weight bytes read from RAM per second at the live generation speed.",
        lambda m: m.ram_read_bytes_per_s,
    ),
    (
        "moe_vram_read_bytes_per_second",
        "VRAM-resident weight bytes read per second at the live generation speed.",
        lambda m: m.vram_read_bytes_per_s,
    ),
    (
        "moe_ram_read_bytes_per_token",
        "Weight bytes read from RAM per token.",
        lambda m: m.traffic.ram_bytes_per_token,
    ),
    (
        "moe_vram_read_bytes_per_token",
        "Weight bytes read from VRAM per token.",
        lambda m: m.traffic.vram_bytes_per_token,
    ),
    ("moe_ram_weight_bytes", "Model weights kept in RAM.", lambda m: m.traffic.ram_weight_bytes),
    ("moe_vram_weight_bytes", "Model weights kept in VRAM.", lambda m: m.traffic.vram_weight_bytes),
    (
        "moe_prompt_pcie_bytes_per_ubatch",
        "CPU-resident weights copied to the GPU per prompt ubatch.",
        lambda m: m.traffic.prompt_pcie_bytes_per_ubatch,
    ),
    (
        "moe_cpu_expert_layers",
        "Layers whose experts are in RAM.",
        lambda m: len(m.placement.cpu_expert_layers),
    ),
    (
        "moe_ram_bandwidth_bytes_per_second",
        "RAM bandwidth used for the roofline.",
        lambda m: m.ram_bandwidth_bytes_per_s,
    ),
    (
        "moe_decode_ceiling_tokens_per_second",
        "Roofline: the generation speed the memory bandwidths allow.",
        lambda m: m.decode_ceiling_tokens_per_s,
    ),
    (
        "moe_efficiency_ratio",
        "Live generation speed over the roofline ceiling.",
        lambda m: m.efficiency,
    ),
)


def render(snap: MetricsSnapshot, labels: ProfileLabels) -> Iterator[Metric]:
    """The metric families for one snapshot (reads only its frozen parts, not ``history``)."""
    f = _Families()
    f.gauge("last_sample_timestamp_seconds", "Wall-clock time of the sample.", snap.time_s)
    lb = dict(zip(labels.names(), labels.values(), strict=True))
    f.gauge("profile_info", "The active profile (value always 1).", 1.0, lb)
    live = [d for d in snap.gpu.devices if not d.lost]
    f.gauge("gpu_available", "1 when an NVIDIA GPU is visible through NVML.", float(bool(live)))
    for d in snap.gpu.devices:
        glb = {"gpu": str(d.index), "gpu_name": d.name or ""}
        f.gauge("gpu_lost", "1 when NVML stopped answering for the device.", float(d.lost), glb)
        if not d.lost:
            f.table(_GPU, d, glb)
            f.gauge(
                "gpu_server_memory_bytes",
                "VRAM held by the watched llama-server and its children.",
                d.server_vram_bytes,
                {**glb, **lb},
            )
    if snap.host is not None:
        f.table(_HOST, snap.host)
        if snap.host.server is not None:
            f.table(_PROCESS, snap.host.server)
    s = snap.server
    if s is not None:
        f.gauge(
            "server_up", "1 when llama-server answers.", float(s.phase is not ServerPhase.DOWN), lb
        )
        for phase in ServerPhase:
            f.gauge(
                "server_phase",
                "1 for the server's current phase (down, loading, idle, prompt, generating).",
                float(s.phase is phase),
                {**lb, "phase": phase.value},
            )
        f.table(_SERVER, s, lb)
        f.table(_SERVER_COUNTERS, s, lb, counter=True)
        for slot in s.slots:
            f.gauge(
                "server_slot_kv_fill_ratio",
                "KV fill of each slot.",
                slot.kv_fill_ratio,
                {**lb, "slot": str(slot.id)},
            )
    if snap.moe is not None:
        f.table(_MOE, snap.moe, lb)
        for bound in Bound:
            f.gauge(
                "moe_bound",
                "1 for what limits the speed now (ram, vram, pcie, gpu, none).",
                float(snap.moe.bound is bound),
                {**lb, "bound": bound.value},
            )
    yield from f
