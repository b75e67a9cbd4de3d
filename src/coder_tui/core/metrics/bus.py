"""The sampler bus: runs the GPU, host, PCIe and server samplers and yields one snapshot per tick.

Owns ``SamplerConfig`` (rates, history length, bandwidth overrides) and ``MetricsSampler``: GPU,
host and a blocking server probe on one worker thread a tick (``asyncio.to_thread``), PCIe on
its own thread, a server polled through a caller's httpx client (or https) alongside; the MoE
traffic model for the watched profile (its GGUF layout read once per model file); the ring buffers.
``async for snap in sampler.run()`` yields frozen ``MetricsSnapshot``s; cancelling or closing the
iterator closes NVML, stops the thread and the server connection. Rendering is the UI's.

A new server run (``new_run``: a start, restart or swap; or counters that went back) empties the
series of the last run (``RUN_SERIES``) and forgets its last request's speed (``speeds.RunSpeeds``).

History series: ``generation_tokens_per_s`` and ``prompt_tokens_per_s`` (each tick's
``Speeds``' ``now``), ``kv_fill_ratio``, ``cpu_percent``, ``ram_used_bytes``, ``swap_used_bytes``,
``swap_in_bytes_per_s``, ``server_cpu_percent``, ``server_rss_bytes``, ``ram_read_bytes_per_s``,
``efficiency``, and per GPU ``gpu{i}.vram_used_bytes``, ``gpu{i}.server_vram_bytes``,
``gpu{i}.gpu_util_percent``, ``gpu{i}.mem_util_percent``, ``gpu{i}.power_w``,
``gpu{i}.temperature_c``, ``gpu{i}.pcie_rx_bytes_per_s``, ``gpu{i}.pcie_tx_bytes_per_s``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from coder_tui.core.config.cmdline import profile_args
from coder_tui.core.config.loader import Profile
from coder_tui.core.errors import UserError
from coder_tui.core.gguf.layout import GgufLayout, read_layout
from coder_tui.core.metrics import moe
from coder_tui.core.metrics.gpu import GpuProbe, PcieSampler
from coder_tui.core.metrics.host import HostProbe
from coder_tui.core.metrics.series import HISTORY_S, History
from coder_tui.core.metrics.server import ServerProbe
from coder_tui.core.metrics.speeds import RunSpeeds
from coder_tui.core.metrics.types import (
    GpuSnapshot,
    HostSnapshot,
    MetricsSnapshot,
    MoeSample,
    Placement,
    ServerPhase,
    ServerSample,
    TokenTraffic,
)

_GPU_SERIES = (
    "vram_used_bytes",
    "server_vram_bytes",
    "gpu_util_percent",
    "mem_util_percent",
    "power_w",
    "temperature_c",
    "pcie_rx_bytes_per_s",
    "pcie_tx_bytes_per_s",
)

RUN_SERIES = (
    "generation_tokens_per_s",
    "prompt_tokens_per_s",
    "kv_fill_ratio",
    "ram_read_bytes_per_s",
    "efficiency",
    "server_cpu_percent",
    "server_rss_bytes",
)
"""Series that belong to one server run (its endpoints, its process, its profile's traffic
model): a new run starts them empty, never under the previous run's values."""


@dataclass(frozen=True)
class SamplerConfig:
    """Rates and overrides; the defaults cost well under 1 % of a core."""

    interval_s: float = 1.0
    """GPU and host sampling, and the tick at which snapshots are yielded."""
    server_interval_s: float = 1.0
    """``/metrics`` and ``/slots`` polling (llama-server answers them on its decode loop)."""
    pcie_rate_hz: float = 1.0
    """PCIe throughput readings per second, averaged into each tick, taken only while the server
    processes a prompt or generates (idle traffic is noise). Each reading is a 20 ms window per
    direction and costs the driver about 1.07 ms of CPU (measured on the H100 host: the whole
    sampler cost 1.44 % of a core with PCIe at 5 Hz, 1.10 % at 2 Hz while generating), hence
    1 Hz: one 20 ms window per tick."""
    history_s: float = HISTORY_S
    """How far back the dashboard's graphs reach (10 minutes)."""
    ram_bandwidth_bytes_per_s: float | None = None
    """RAM bandwidth for the roofline; unset: measured once with a numpy copy (~0.1 s)."""
    vram_bandwidth_bytes_per_s: float | None = None
    """VRAM bandwidth for the roofline; unset: NVML's memory clock x bus width (slowest GPU)."""


def _resolve(future: asyncio.Future[None]) -> None:
    """End a wait (``MetricsSampler._wait``) unless it has ended already."""
    if not future.done():
        future.set_result(None)


class MetricsSampler:
    """Samples everything at ``config``'s rates for the server ``watch`` names."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        config: SamplerConfig | None = None,
        nvml: Any | None = None,
        client: httpx.AsyncClient | None = None,
        api_key: str | None = None,
    ) -> None:
        self.config = config or SamplerConfig()
        self.history = History(self.config.history_s, 1.0 / self.config.interval_s)
        self.gpu = GpuProbe(nvml)
        self.host = HostProbe()
        self.pcie = PcieSampler(self.gpu, self.config.pcie_rate_hz)
        self.server: ServerProbe | None = None
        self._client = client
        self._api_key = api_key
        if base_url is not None:
            self.server = self._probe(base_url)
        self._profile: Profile | None = None
        self._layouts: dict[tuple[Path, int, int], GgufLayout | str] = {}
        self._traffic: dict[tuple[Any, ...], tuple[Placement, TokenTraffic]] = {}
        self._ram_bw: float | None = self.config.ram_bandwidth_bytes_per_s
        self._closed = False
        self._run_speeds = RunSpeeds()
        """The current server run and its speeds (``new_run``)."""
        self.slow_factor = 1
        """Ticks are this many intervals apart (see ``set_slow``)."""
        self._covered = 1
        """Intervals the coming tick covers: its samples count that many times in the history."""
        self._sleeping: asyncio.Future[None] | None = None
        """The wait for the next tick (``run``), which ``set_slow`` wakes to take its new pace."""

    def set_slow(self, factor: int) -> None:
        """Tick every ``factor`` intervals (the app asks for 2 while no CPU core is idle, as
        nvitop's default of 2 s: every wake-up then costs the model's threads). PCIe readings slow
        down alike. A slow tick's values go into the history ``factor`` times, so each series keeps
        one entry per interval and its sparkline its time scale. The wait for the next tick takes
        the new pace at once. Call it on the event loop that runs ``run``."""
        self.slow_factor = max(1, int(factor))
        self.pcie.interval_s = self.slow_factor / self.config.pcie_rate_hz
        if self._sleeping is not None:  # the sleep to the next tick takes the new pace at once
            _resolve(self._sleeping)

    def watch(
        self, *, pid: int | None, profile: Profile | None = None, base_url: str | None = None
    ) -> None:
        """Follow a (new) server: its pid, the profile it runs, and its address."""
        self.host.watch(pid)
        self._profile = profile
        if base_url is not None:
            if self.server is None:
                self.server = self._probe(base_url)
            else:
                self.server.reset(base_url)

    def new_run(self, profile: Profile | None = None) -> None:
        """A new server run begins (a start, a restart, a swap; ``profile``: the one starting):
        the series of the last run start empty, its last request's speed is forgotten, the
        probe forgets its counters, and a tick sampling meanwhile drops its server part. The
        traffic model follows ``profile`` from now on; ``watch`` adopts the new process."""
        self._forget_run()
        if profile is not None:
            self._profile = profile
        if self.server is not None:
            self.server.reset()

    def _forget_run(self) -> None:
        self._run_speeds.new_run()
        self.history.clear(RUN_SERIES)

    def cleared(self, snap: MetricsSnapshot) -> MetricsSnapshot:
        """``snap`` without what belonged to an ended run (its server, its process, the traffic
        model and the speeds): shown at once when a new run begins, until its first tick."""
        host = replace(snap.host, server=None) if snap.host is not None else None
        return replace(
            snap,
            server=None,
            moe=None,
            moe_error=None,
            host=host,
            speeds=self._run_speeds.current(),
        )

    def _probe(self, base_url: str) -> ServerProbe:
        return ServerProbe(
            base_url,
            client=self._client,
            min_interval_s=self.config.server_interval_s,
            api_key=self._api_key,
        )

    # -- the loop ----------------------------------------------------------------------------
    async def run(self) -> AsyncGenerator[MetricsSnapshot, None]:
        """One snapshot per ``interval_s`` until cancelled or closed (then everything stops).

        Leaving the loop early? Wrap it in ``contextlib.aclosing(sampler.run())`` so the cleanup
        runs at once, not whenever the abandoned generator is collected.
        """
        try:
            await asyncio.to_thread(self._open)
            next_t = time.monotonic()
            while True:
                yield await self.tick()
                next_t, self._covered = await self._wait(next_t)
        finally:
            await self.aclose()

    async def _wait(self, since: float) -> tuple[float, int]:
        """Sleep until ``slow_factor`` intervals after the tick at ``since``; a ``set_slow``
        meanwhile moves the wake-up (the app decides on a snapshot after this sleep has begun).
        Returns when the next tick is due and how many intervals it covers."""
        loop = asyncio.get_running_loop()
        while True:
            factor = self.slow_factor
            due = since + self.config.interval_s * factor
            delay = due - time.monotonic()
            if delay < 0:  # fell behind (a slow server answer): keep the rate, skip ticks
                return time.monotonic(), factor
            woken: asyncio.Future[None] = loop.create_future()
            timer = loop.call_later(delay, _resolve, woken)
            self._sleeping = woken
            try:
                await woken
            finally:
                timer.cancel()
                self._sleeping = None
            if self.slow_factor == factor:
                return due, factor

    async def tick(self) -> MetricsSnapshot:
        """Sample every source once and append to the history (``run`` calls this)."""
        profile, probe, run = self._profile, self.server, self._run_speeds.run
        # A blocking server probe runs on the hardware thread: one thread hop a tick, not two.
        inline = probe if probe is not None and probe.blocking else None
        hw = asyncio.to_thread(self._sample_hw, profile, inline)
        server: ServerSample | None
        if probe is not None and inline is None:
            (gpu, host, layout, _), server = await asyncio.gather(hw, probe.sample())
        else:
            gpu, host, layout, server = await hw
        if self._run_speeds.run != run:  # a new run began meanwhile: this answer was the last run's
            server, profile = None, None
        elif server is not None and server.counters_restarted:  # restarted elsewhere
            self._forget_run()  # the probe's baseline is the new process's already
        # PCIe readings only while the server works; the next tick averages what they read.
        busy = server is not None and server.phase in (ServerPhase.PROMPT, ServerPhase.GENERATING)
        self.pcie.set_active(busy or server is None)
        moe_sample, moe_error = self._moe(profile, layout, gpu, server)
        snap = MetricsSnapshot(
            time_s=time.time(),
            gpu=gpu,
            host=host,
            server=server,
            moe=moe_sample,
            history=self.history,
            moe_error=moe_error,
            speeds=self._run_speeds.update(server),
        )
        self._record(snap)
        return snap

    def _open(self) -> None:
        if self.gpu.open():
            self.pcie.start()

    def _sample_hw(
        self, profile: Profile | None, server: ServerProbe | None
    ) -> tuple[GpuSnapshot, HostSnapshot, GgufLayout | str | None, ServerSample | None]:
        sample = server.sample_blocking() if server is not None else None
        host = self.host.sample()
        gpu = self.gpu.sample(self.host.process_tree(), self.pcie.take())
        layout = self._layout(profile) if profile is not None else None
        if isinstance(layout, GgufLayout) and self._ram_bw is None:
            self._ram_bw = moe.measure_ram_bandwidth()
        return gpu, host, layout, sample

    def _layout(self, profile: Profile) -> GgufLayout | str:
        """The profile's model layout, read once per file version; a string says why not."""
        try:
            st = profile.model.stat()
        except OSError as exc:
            return f"{profile.model}: {(exc.strerror or str(exc)).lower()}"
        key = (profile.model, st.st_size, st.st_mtime_ns)
        if key not in self._layouts:
            try:
                self._layouts[key] = read_layout(profile.model)
            except UserError as exc:
                self._layouts[key] = str(exc)
        return self._layouts[key]

    def _moe(
        self,
        profile: Profile | None,
        layout: GgufLayout | str | None,
        gpu: GpuSnapshot,
        server: ServerSample | None,
    ) -> tuple[MoeSample | None, str | None]:
        if profile is None or layout is None:
            return None, None
        if isinstance(layout, str):
            return None, layout
        live = [d for d in gpu.devices if not d.lost]
        has_gpu = gpu.available and bool(live)
        args = profile_args(profile)  # whatever the placement reads, it reads from these
        key = (id(layout), args, has_gpu)
        if key not in self._traffic:
            where = moe.placement_from_args(layout, args, has_gpu=has_gpu)
            self._traffic = {key: (where, moe.token_traffic(layout, where))}
        where, traffic = self._traffic[key]
        vram_bw = self.config.vram_bandwidth_bytes_per_s
        if vram_bw is None:
            known = [d.vram_bandwidth_bytes_per_s for d in live if d.vram_bandwidth_bytes_per_s]
            vram_bw = min(known) if known else None
        return (
            moe.moe_sample(
                where,
                traffic,
                ram_bandwidth_bytes_per_s=self._ram_bw,
                vram_bandwidth_bytes_per_s=vram_bw,
                generation_tokens_per_s=server.generation_tokens_per_s if server else None,
                phase=server.phase if server else ServerPhase.DOWN,
                prompt_tokens_in_interval=(
                    server.prompt_tokens_per_s * server.interval_s
                    if server and server.prompt_tokens_per_s is not None and server.interval_s
                    else None
                ),
            ),
            None,
        )

    def _record(self, snap: MetricsSnapshot) -> None:
        s, host, m, speeds = snap.server, snap.host, snap.moe, snap.speeds
        proc = host.server if host else None
        values: dict[str, float | None] = {
            # The speeds' ``now``, the numbers the tiles show: never computed a second way here.
            "generation_tokens_per_s": speeds.generation.now_tokens_per_s,
            "prompt_tokens_per_s": speeds.prompt.now_tokens_per_s,
            "kv_fill_ratio": s.kv_fill_ratio if s else None,
            "cpu_percent": host.cpu_percent if host else None,
            "ram_used_bytes": host.ram_used_bytes if host else None,
            "swap_used_bytes": host.swap_used_bytes if host else None,
            "swap_in_bytes_per_s": host.swap_in_bytes_per_s if host else None,
            "server_cpu_percent": proc.cpu_percent if proc else None,
            "server_rss_bytes": proc.rss_bytes if proc else None,
            "ram_read_bytes_per_s": m.ram_read_bytes_per_s if m else None,
            "efficiency": m.efficiency if m else None,
        }
        for d in snap.gpu.devices:
            for name in _GPU_SERIES:
                value = getattr(d, name)
                values[f"gpu{d.index}.{name}"] = float(value) if value is not None else None
        for _ in range(self._covered):
            self.history.extend(values)

    async def aclose(self) -> None:
        """Stop the PCIe thread, shut NVML down, close the HTTP client (idempotent)."""
        if self._closed:
            return
        self._closed = True

        def stop_hw() -> None:
            self.pcie.stop()
            self.gpu.close()

        await asyncio.to_thread(stop_hw)
        if self.server is not None:
            await self.server.aclose()
