"""History ring buffers, and the sampler bus that fills them (fake NVML, scripted HTTP server)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from test_gguf_layout import write_moe_gguf
from test_gpu import Dev, FakeNVML, NVMLError_LibraryNotFound

from coder_tui.core.config.loader import Profile
from coder_tui.core.metrics.bus import MetricsSampler, SamplerConfig
from coder_tui.core.metrics.series import History
from coder_tui.core.metrics.types import NO_GPU, Bound, ServerPhase

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "metrics"


def test_history_keeps_the_last_n_seconds() -> None:
    h = History(seconds=5, rate_hz=2)
    assert h.maxlen == 10
    for i in range(25):
        h.append("x", float(i))
    assert h.tail("x") == [float(i) for i in range(15, 25)]
    assert h.tail("x", 3) == [22.0, 23.0, 24.0]
    assert h.tail("x", 0) == [] and h.tail("nope") == [] and h.last("nope") is None
    h.extend({"x": None, "y": 1.0})
    assert h.last("x") is None and h.tail("y") == [1.0]
    assert set(h.names()) == {"x", "y"} and "y" in h and len(h) == 2
    with pytest.raises(ValueError):
        History(seconds=0)


def test_history_append_is_cheap() -> None:
    h = History(seconds=300, rate_hz=1)
    start = time.perf_counter()
    for i in range(20_000):
        h.append("a", float(i))
    assert time.perf_counter() - start < 0.5
    assert len(h.tail("a")) == 300


def _scripted_server() -> httpx.AsyncClient:
    """Serves the captured idle, then generating, then finished payloads, one per poll."""
    steps = ["idle", "generating_a", "generating_b", "after"]
    state = {"metrics": 0, "slots": 0}

    def handle(request: httpx.Request) -> httpx.Response:
        kind = "metrics" if request.url.path == "/metrics" else "slots"
        step = steps[min(state[kind], len(steps) - 1)]
        state[kind] += 1
        suffix = "txt" if kind == "metrics" else "json"
        return httpx.Response(200, text=(FIX / f"{kind}_{step}.{suffix}").read_text())

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


async def test_bus_yields_snapshots_and_stops_cleanly(tmp_path: Path) -> None:
    model = write_moe_gguf(tmp_path / "m.gguf")
    profile = Profile(name="p", model=model, n_gpu_layers=99, n_cpu_moe=2)
    fake = FakeNVML([Dev(procs=[(os.getpid(), 1 << 30)])])
    config = SamplerConfig(
        interval_s=0.01, server_interval_s=0, pcie_rate_hz=100, ram_bandwidth_bytes_per_s=40e9
    )
    client = _scripted_server()
    sampler = MetricsSampler("http://x", config=config, nvml=fake, client=client)
    sampler.watch(pid=os.getpid(), profile=profile)
    snaps = []
    async with contextlib.aclosing(sampler.run()) as it:
        async for snap in it:
            snaps.append(snap)
            if len(snaps) == 4:
                break
    await client.aclose()
    assert fake.shutdowns == 1 and sampler.pcie._thread is None
    first, gen, last = snaps[0], snaps[2], snaps[3]
    assert first.gpu.available and first.gpu.devices[0].server_vram_bytes == 1 << 30
    assert first.host is not None and first.host.server is not None
    assert gen.server is not None and gen.server.phase is ServerPhase.GENERATING
    assert gen.moe is not None and gen.moe.bound is Bound.RAM_BANDWIDTH
    assert gen.moe.placement.cpu_expert_layers == (0, 1)
    assert gen.moe.vram_bandwidth_bytes_per_s == pytest.approx(2619e6 * 5120 / 8 * 2)
    assert gen.moe.ram_bandwidth_bytes_per_s == 40e9
    assert gen.moe.ram_read_bytes_per_s == pytest.approx(
        gen.moe.traffic.ram_bytes_per_token * gen.server.generation_tokens_per_s
    )
    assert gen.moe.efficiency is not None and gen.moe.efficiency > 0
    assert last.server is not None and last.server.generation_tokens_per_busy_s == pytest.approx(
        200 / 7.55537
    )
    h = last.history
    assert h.tail("kv_fill_ratio")[-3:-1] == [76 / 4096, 161 / 4096]
    assert len(h.tail("gpu0.vram_used_bytes")) == 4 and "gpu0.pcie_rx_bytes_per_s" in h


async def test_bus_without_gpu_or_server_and_a_bad_model(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"junk")
    fake = FakeNVML([], init_error=NVMLError_LibraryNotFound)
    sampler = MetricsSampler(config=SamplerConfig(interval_s=0.01), nvml=fake)
    sampler.watch(pid=None, profile=Profile(name="p", model=bad))
    agen = sampler.run()
    snap = await agen.__anext__()
    assert not snap.gpu.available and snap.gpu.reason == NO_GPU
    assert snap.server is None and snap.moe is None
    assert snap.moe_error is not None and "bad.gguf" in snap.moe_error
    await agen.aclose()


async def test_slow_ticks_are_farther_apart_and_count_twice_in_the_history() -> None:
    fake = FakeNVML([Dev()])
    sampler = MetricsSampler(config=SamplerConfig(interval_s=0.05, pcie_rate_hz=4), nvml=fake)
    times: list[float] = []
    async with contextlib.aclosing(sampler.run()) as it:
        async for _ in it:
            times.append(time.monotonic())
            if len(times) == 2:
                sampler.set_slow(2)  # from the third tick on
            if len(times) == 5:
                break
    assert sampler.pcie.interval_s == 0.5
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] < 0.08 and all(0.09 <= g < 0.2 for g in gaps[1:]), gaps
    # ticks 1-2 cover one interval each; 3-5 come two intervals apart and count twice
    assert len(sampler.history.tail("cpu_percent")) == 1 + 1 + 2 + 2 + 2
    sampler.set_slow(1)
    assert sampler.slow_factor == 1 and sampler.pcie.interval_s == 0.25


async def test_set_slow_during_the_wait_moves_the_next_tick() -> None:
    """The app slows the sampler from its handler of a snapshot, which runs after the sampler
    has begun its wait for the next tick: that tick comes at the new pace, not one later."""
    fake = FakeNVML([Dev()])
    sampler = MetricsSampler(config=SamplerConfig(interval_s=0.1), nvml=fake)
    loop = asyncio.get_running_loop()
    times: list[float] = []
    async with contextlib.aclosing(sampler.run()) as it:
        async for _ in it:
            times.append(time.monotonic())
            if len(times) == 2:
                loop.call_later(0.02, sampler.set_slow, 2)  # as the app's handler would
            if len(times) == 3:
                loop.call_later(0.02, sampler.set_slow, 1)
            if len(times) == 4:
                break
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert 0.08 <= gaps[0] < 0.15 and 0.19 <= gaps[1] < 0.3 and 0.08 <= gaps[2] < 0.15, gaps
    # the slow tick counts twice in the history: 1 + 1 + 2 + 1
    assert len(sampler.history.tail("cpu_percent")) == 5


async def test_bus_stops_on_cancel(tmp_path: Path) -> None:
    fake = FakeNVML([Dev()])
    sampler = MetricsSampler(config=SamplerConfig(interval_s=0.01), nvml=fake)
    seen = asyncio.Event()

    async def consume() -> None:
        async for _ in sampler.run():
            seen.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(seen.wait(), 5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert fake.shutdowns == 1 and sampler.pcie._thread is None


async def test_profile_change_rebuilds_the_traffic_model(tmp_path: Path) -> None:
    model = write_moe_gguf(tmp_path / "m.gguf")
    sampler = MetricsSampler(
        config=SamplerConfig(ram_bandwidth_bytes_per_s=1e10), nvml=FakeNVML([Dev()])
    )
    profile = Profile(name="p", model=model, n_gpu_layers=99)
    sampler.watch(pid=None, profile=profile)
    a = await sampler.tick()
    sampler.watch(pid=None, profile=replace(profile, n_cpu_moe=4))
    b = await sampler.tick()
    await sampler.aclose()
    assert a.moe is not None and b.moe is not None
    assert a.moe.placement.cpu_expert_layers == () and b.moe.placement.cpu_expert_layers == (
        0, 1, 2, 3,
    )  # fmt: skip
    assert a.moe.bound is Bound.NONE  # no server: nothing to bound
    assert json.dumps(a.moe.traffic.ram_bytes_per_token)  # plain ints
