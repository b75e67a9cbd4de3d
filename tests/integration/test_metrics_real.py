"""The sampler bus against the real llama-server generating with the bench demo model.

The small demo model generates ~2,600 tokens/s on two cores, 200 tokens in under 0.1 s: too quick
to watch. The bench size (16 layers) takes seconds, so the KV fill can be seen moving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from coder_tui.core.config.loader import Config, load_config
from coder_tui.core.demo.build import DemoResult, prepare_demo
from coder_tui.core.metrics.bus import MetricsSampler, SamplerConfig
from coder_tui.core.metrics.types import MetricsSnapshot, ServerPhase, ServerSample
from coder_tui.core.server.ports import free_port
from coder_tui.core.server.process import ServerManager

pytestmark = pytest.mark.integration

TOKENS = 500
"""Long enough (about 5 s on two cores) that the live speed settles well inside 5 %."""


@pytest.fixture(scope="module")
def bench_demo(llama_server: Path, tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    """The bench demo model in Q4_K_M only (about 20 s to make)."""
    return prepare_demo(tmp_path_factory.mktemp("bench"), "bench", ("Q4_K_M",), port=free_port())


@pytest.fixture
def bench_config(bench_demo: DemoResult) -> Config:
    config = load_config(bench_demo.config_path)
    return replace(config, server=replace(config.server, port=free_port(), stop_grace_s=5))


async def _generate(url: str) -> dict[str, Any]:
    """One streaming chat request of exactly TOKENS tokens; the server's timings for it."""
    body = {
        "messages": [{"role": "user", "content": "write a function"}],
        "max_tokens": TOKENS,
        "ignore_eos": True,
        "stream": True,
    }
    timings: dict[str, Any] = {}
    async with (
        httpx.AsyncClient(base_url=url, timeout=120, trust_env=False) as client,
        client.stream("POST", "/v1/chat/completions", json=body) as resp,
    ):
        async for line in resp.aiter_lines():
            if line.startswith("data: {"):
                timings = json.loads(line[6:]).get("timings") or timings
    return timings


async def test_sampler_speed_matches_server_timings_and_kv_moves(
    bench_config: Config, tmp_path: Path
) -> None:
    mgr = ServerManager(bench_config.server, log_dir=tmp_path)
    profile = bench_config.profile("q4_k_m")
    ready = await mgr.start(profile)
    snaps: list[MetricsSnapshot] = []
    try:
        config = SamplerConfig(interval_s=0.25, server_interval_s=0.25)
        sampler = MetricsSampler(mgr.url, config=config)
        sampler.watch(pid=ready.pid, profile=profile)
        task: asyncio.Task[dict[str, Any]] | None = None
        after_done = 0
        graph_points: list[float | None] = []  # the generation graph's newest point, each tick
        async with contextlib.aclosing(sampler.run()) as it:
            async for snap in it:
                snaps.append(snap)
                graph_points.append(snap.history.last("generation_tokens_per_s"))
                if task is None:
                    task = asyncio.create_task(_generate(mgr.url))
                elif task.done():
                    after_done += 1
                    if after_done >= 3:
                        break
                assert len(snaps) < 600, "the request never finished"
        assert task is not None
        timings = task.result()
    finally:
        await mgr.stop()

    servers: list[ServerSample] = []  # each server sample once (a tick may reuse the last one)
    for snap in snaps:
        if snap.server is not None and all(snap.server is not s for s in servers):
            servers.append(snap.server)
    # tokens per busy second over the interval in which the request ended
    busy = [s.generation_tokens_per_busy_s for s in servers if s.generation_tokens_per_busy_s]
    assert len(busy) == 1
    assert busy[0] == pytest.approx(timings["predicted_per_second"], rel=0.05)
    # the live (wall-clock) rate accounts for every generated token
    counted = sum(
        s.generation_tokens_per_s * s.interval_s
        for s in servers
        if s.generation_tokens_per_s is not None and s.interval_s is not None
    )
    assert counted == pytest.approx(TOKENS, rel=0.05)
    generating = [s for s in servers if s.phase is ServerPhase.GENERATING]
    fills = [s.kv_fill_ratio for s in generating if s.kv_fill_ratio is not None]
    assert len(set(fills)) >= 2 and fills == sorted(fills)
    assert snaps[-1].server is not None and snaps[-1].server.phase is ServerPhase.IDLE
    # the rest of the snapshot is there too
    last = snaps[-1]
    assert last.host is not None and last.host.server is not None and last.host.server.alive
    assert last.moe is not None and last.moe.traffic.ram_bytes_per_token > 0
    assert last.moe_error is None
    gen = next(s for s in snaps if s.server is not None and s.server is generating[-1])
    assert gen.moe is not None and gen.moe.ram_read_bytes_per_s is not None

    # What the generation tile shows (core/metrics/speeds.py): "now", the rate over the last
    # interval, which is the graph's newest point on every tick; while generating, the running
    # request's speed so far; after it, the last request's speed per busy second. Both of those
    # against the server's own timings.
    now = [s.speeds.generation.now_tokens_per_s for s in snaps]
    assert now == graph_points and any(v for v in now)
    late = [
        s for s in snaps if s.server is not None and s.server in generating[len(generating) // 2 :]
    ]
    running = [s.speeds.generation.request_tokens_per_s for s in late]
    assert running and all(v is not None for v in running)
    assert running[-1] == pytest.approx(timings["predicted_per_second"], rel=0.05)
    last_request = snaps[-1].speeds.generation.last_request_tokens_per_s
    assert last_request == pytest.approx(timings["predicted_per_second"], rel=0.05)
