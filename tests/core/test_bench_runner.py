"""The bench runner against a fake backend: order, fairness, progress, Ctrl+C, quality."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from test_bench_support import MACHINE, FakeBackend, profile

from coder_tui.core.bench.prompts import (
    CATEGORIES,
    PROMPTS,
    WARMUP_PROMPT,
    parse_categories,
    select_prompts,
)
from coder_tui.core.bench.quality import TASKS
from coder_tui.core.bench.runner import (
    BenchEvent,
    BenchRun,
    Finished,
    Loaded,
    Measured,
    Planned,
    QualityGraded,
    interleaved_order,
)
from coder_tui.core.bench.types import Settings
from coder_tui.core.errors import UserError


def _settings(runs: int = 2, *, fixed: bool = True, quality: bool = False) -> Settings:
    prompts = select_prompts(("coding", "writing"), 2)
    return Settings(
        runs=runs,
        categories=("coding", "writing"),
        prompt_ids=tuple(p.id for p in prompts),
        max_tokens=32,
        fixed_length=fixed,
        seed=7,
        quality=quality,
    )


def _run(backend: FakeBackend, settings: Settings, names: tuple[str, ...] = ("a", "b")) -> BenchRun:
    prompts = select_prompts(settings.categories, 2)
    return BenchRun([profile(n) for n in names], prompts, settings, backend, machine=MACHINE)


async def _collect(run: BenchRun) -> list[BenchEvent]:
    return [event async for event in run.events()]


def test_prompt_sets() -> None:
    assert set(CATEGORIES) == {"coding", "writing", "debugging", "reasoning"}
    for cat, prompts in PROMPTS.items():
        assert len(prompts) >= 6, cat
        assert len({p.id for p in prompts}) == len(prompts)
    assert any("Snake" in p.text for p in PROMPTS["coding"])
    assert parse_categories(" writing,coding,writing") == ("writing", "coding")
    assert parse_categories(None) == CATEGORIES
    with pytest.raises(UserError, match="unknown bench category 'cooking'"):
        parse_categories("coding,cooking")
    assert len(select_prompts(CATEGORIES, 1)) == 4


def test_interleaved_order() -> None:
    assert interleaved_order(["a", "b"], 3) == [
        (0, "a"), (0, "b"), (1, "a"), (1, "b"), (2, "a"), (2, "b")
    ]  # fmt: skip


async def test_runs_interleaved_with_one_warmup_per_load() -> None:
    backend = FakeBackend({"a": 20.0, "b": 10.0})
    events = await _collect(_run(backend, _settings(runs=2)))
    loads = [c[1] for c in backend.calls if c[0] == "load"]
    assert loads == ["a", "b", "a", "b"]
    # after every load: exactly one warm-up, then the 4 prompts
    seq = [c for c in backend.calls if c[0] in ("load", "complete")]
    for i in range(0, len(seq), 6):
        assert seq[i][0] == "load"
        assert seq[i + 1][2] == WARMUP_PROMPT[:20]
        assert all(c[0] == "complete" and c[1] == seq[i][1] for c in seq[i + 2 : i + 6])
    measured = [e for e in events if isinstance(e, Measured)]
    assert len(measured) == 2 * 2 * 4
    assert [e.progress.done for e in measured] == list(range(1, 17))
    assert measured[-1].progress.eta_s == 0
    assert isinstance(events[0], Planned) and events[0].total_requests == 16
    assert len([e for e in events if isinstance(e, Loaded)]) == 4
    final = events[-1]
    assert isinstance(final, Finished) and not final.result.interrupted
    assert len(final.result.samples) == 16
    assert final.result.profiles[0].load_times_s and len(final.result.profiles[0].load_times_s) == 2
    assert backend.calls[-1] == ("unload",)


async def test_every_request_is_fair() -> None:
    backend = FakeBackend({"a": 20.0})
    await _collect(_run(backend, _settings(runs=1), ("a",)))
    measured = [r for r in backend.requests if r["prompt"] != WARMUP_PROMPT]
    assert measured and all(
        r["temperature"] == 0 and r["seed"] == 7 and r["max_tokens"] == 32 and r["ignore_eos"]
        for r in measured
    )
    backend = FakeBackend({"a": 20.0})
    await _collect(_run(backend, _settings(runs=1, fixed=False), ("a",)))
    assert not any(r["ignore_eos"] for r in backend.requests)


async def test_cancelling_the_task_keeps_finished_runs_and_stops_the_server() -> None:
    backend = FakeBackend({"a": 20.0, "b": 10.0}, delay_s=0.01)
    run = _run(backend, _settings(runs=3))
    seen: list[BenchEvent] = []

    async def consume() -> None:
        async with contextlib.aclosing(run.events()) as events:
            async for event in events:
                seen.append(event)
            if sum(isinstance(e, Measured) for e in seen) == 6:
                await asyncio.sleep(10)  # Ctrl+C arrives while the 7th request is in flight

    task = asyncio.create_task(consume())
    while sum(isinstance(e, Measured) for e in seen) < 6:
        await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert backend.calls[-1] == ("unload",) and backend.loaded is None
    result = run.result()
    assert result.interrupted and len(result.samples) == 6
    assert [s.profile for s in result.samples] == ["a"] * 4 + ["b"] * 2


async def test_cancelled_inside_a_request() -> None:
    backend = FakeBackend({"a": 20.0}, delay_s=5.0)
    run = _run(backend, _settings(runs=1), ("a",))
    task = asyncio.create_task(_collect(run))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert backend.unloads == 1 and run.result().interrupted and not run.result().samples


async def test_cooperative_cancel_ends_with_finished() -> None:
    backend = FakeBackend({"a": 20.0, "b": 10.0})
    run = _run(backend, _settings(runs=2))
    events: list[BenchEvent] = []
    async for event in run.events():
        events.append(event)
        if isinstance(event, Measured) and event.progress.done == 5:
            run.cancel()
    final = events[-1]
    assert isinstance(final, Finished) and final.result.interrupted
    assert len(final.result.samples) == 5 and backend.unloads >= 1
    assert backend.loaded is None


async def test_quality_reference_passes_and_wrong_fails() -> None:
    by_prompt = {t.prompt: t for t in TASKS}

    def right(prompt: str) -> str:
        task = by_prompt.get(prompt)
        return f"Here you go:\n```python\n{task.reference}```\n" if task else "hi"

    def wrong(prompt: str) -> str:
        task = by_prompt.get(prompt)
        return f"```python\ndef {task.function}(*a):\n    return None\n```" if task else "hi"

    backend = FakeBackend({"good": 20.0, "bad": 20.0})
    backend.reply = lambda p: right(p) if backend.loaded == "good" else wrong(p)
    events = await _collect(_run(backend, _settings(runs=2, quality=True), ("good", "bad")))
    graded = [e.outcome for e in events if isinstance(e, QualityGraded)]
    assert len(graded) == 2 * len(TASKS)  # once per profile, in round 0 only
    assert all(o.passed for o in graded if o.profile == "good")
    assert not any(o.passed for o in graded if o.profile == "bad")
    final = events[-1]
    assert isinstance(final, Finished) and len(final.result.quality) == 2 * len(TASKS)
    quality_requests = [r for r in backend.requests if r["prompt"] in by_prompt]
    assert all(not r["ignore_eos"] and r["temperature"] == 0 for r in quality_requests)
