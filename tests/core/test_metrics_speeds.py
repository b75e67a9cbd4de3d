"""Speeds: one definition for a tile's number and its graph, and one server run at a time.

Issue 25: the generation graph (tokens per wall second over each interval) and the tile's number
(the running request's speed, or the last request's) were computed apart and disagreed; after a
swap the dashboard kept the old profile's ``last request`` speed. The bus here polls the payloads
captured from the real llama-server (``tests/fakes/metrics_payloads.py``).
"""

from __future__ import annotations

import pytest
from test_gpu import Dev, FakeNVML
from tests.fakes.metrics_payloads import Replay

from coder_tui.core.metrics.bus import RUN_SERIES, MetricsSampler, SamplerConfig
from coder_tui.core.metrics.server import ServerProbe
from coder_tui.core.metrics.speeds import RunSpeeds
from coder_tui.core.metrics.types import MetricsSnapshot, ServerPhase, ServerSample

REQUEST = ["idle", "prompt", "generating_a", "generating_b", "after"]
LAST_REQUEST = 200 / 7.55537
"""The captured request's ``predicted_per_second``: 200 tokens in 7.55537 s of generation."""


def _sampler(replay: Replay) -> MetricsSampler:
    config = SamplerConfig(interval_s=0.01, server_interval_s=0, ram_bandwidth_bytes_per_s=1e10)
    return MetricsSampler("http://x", config=config, nvml=FakeNVML([Dev()]), client=replay.client())


async def _ticks(sampler: MetricsSampler, n: int) -> list[MetricsSnapshot]:
    return [await sampler.tick() for _ in range(n)]


async def test_the_graphs_newest_point_is_the_number_on_every_tick() -> None:
    replay = Replay(list(REQUEST))
    sampler = _sampler(replay)
    snaps = []
    for _ in REQUEST:
        snap = await sampler.tick()
        snaps.append(snap)
        for kind in ("generation", "prompt"):
            now = getattr(snap.speeds, kind).now_tokens_per_s
            assert snap.history.last(f"{kind}_tokens_per_s") == now, (kind, snap.server)
    await sampler.aclose()
    assert snaps[0].speeds.generation.now_tokens_per_s is None  # no interval yet: a gap
    gen = snaps[3]
    assert gen.server is not None and gen.server.phase is ServerPhase.GENERATING
    assert gen.speeds.generation.request_tokens_per_s is not None
    after = snaps[-1].speeds.generation
    assert after.request_tokens_per_s is None
    assert after.last_request_tokens_per_s == pytest.approx(LAST_REQUEST)
    # Two figures, not one: the last interval's rate is not the request's speed.
    assert after.now_tokens_per_s != pytest.approx(LAST_REQUEST)


async def test_a_new_run_forgets_the_last_runs_figures() -> None:
    """The swap: the next run's speeds and graphs start empty, whatever the last run measured."""
    replay = Replay(list(REQUEST))
    sampler = _sampler(replay)
    snaps = await _ticks(sampler, len(REQUEST))
    assert snaps[-1].speeds.generation.last_request_tokens_per_s == pytest.approx(LAST_REQUEST)
    cpu_before = len(sampler.history.tail("cpu_percent"))

    sampler.new_run()
    cleared = sampler.cleared(snaps[-1])
    assert cleared.server is None and cleared.moe is None and cleared.host is not None
    assert cleared.host.server is None and cleared.gpu is snaps[-1].gpu
    assert cleared.speeds.generation.last_request_tokens_per_s is None
    assert cleared.speeds.prompt.last_request_tokens_per_s is None
    assert cleared.speeds.run == snaps[-1].speeds.run + 1
    for name in RUN_SERIES:
        assert sampler.history.tail(name) == [], name
    assert len(sampler.history.tail("cpu_percent")) == cpu_before  # the machine's own: kept

    replay.steps.append("idle")  # the new server: counters from zero
    fresh = await sampler.tick()
    await sampler.aclose()
    assert fresh.speeds.generation.last_request_tokens_per_s is None
    assert fresh.speeds.prompt.last_request_tokens_per_s is None
    assert sampler.history.tail("generation_tokens_per_s") == [None]  # no baseline yet


async def test_a_tick_sampling_while_a_run_begins_drops_its_server_part() -> None:
    """The answer of a poll in flight when the new run began is the old server's."""
    replay = Replay(list(REQUEST))
    sampler = _sampler(replay)
    await _ticks(sampler, len(REQUEST) - 1)
    replay.on_poll = sampler.new_run  # the swap begins while the last tick samples
    snap = await sampler.tick()
    await sampler.aclose()
    assert snap.server is None and snap.moe is None
    assert snap.speeds.generation.last_request_tokens_per_s is None
    assert sampler.history.tail("generation_tokens_per_s") == [None]


async def test_counters_that_go_back_begin_a_new_run() -> None:
    """A server restarted elsewhere (attached): its counters start again, so does the run."""
    replay = Replay([*REQUEST, "idle"])
    sampler = _sampler(replay)
    snaps = await _ticks(sampler, len(REQUEST) + 1)
    await sampler.aclose()
    before, restarted = snaps[-2], snaps[-1]
    assert restarted.server is not None and restarted.server.counters_restarted
    assert restarted.speeds.run == before.speeds.run + 1
    assert restarted.speeds.generation.last_request_tokens_per_s is None
    assert sampler.history.tail("kv_fill_ratio") == [None]


def test_a_reset_probe_does_not_time_a_request_from_the_old_server() -> None:
    """Slot and task ids start again on a new server: a request's start is the new one's."""
    from test_server_metrics import metrics, slots

    probe = ServerProbe("http://unused")
    probe.compute(0.0, metrics("generating_a"), slots("generating_a"))
    probe.reset()
    again = probe.compute(5.0, metrics("generating_b"), slots("generating_b"))
    assert again.generation_tokens_per_request_s is None  # first seen now: no speed yet


def test_run_speeds_keep_the_last_request_of_their_run_only() -> None:
    speeds = RunSpeeds()
    ended = ServerSample(
        phase=ServerPhase.IDLE, generation_tokens_per_s=3.0, generation_tokens_per_busy_s=515.0
    )
    assert speeds.update(ended).generation.last_request_tokens_per_s == 515.0
    idle = ServerSample(phase=ServerPhase.IDLE, generation_tokens_per_s=0.0)
    assert speeds.update(idle).generation.last_request_tokens_per_s == 515.0
    assert speeds.update(idle).generation.now_tokens_per_s == 0.0
    speeds.new_run()
    assert speeds.update(idle).generation.last_request_tokens_per_s is None
    assert speeds.current().generation.now_tokens_per_s is None
