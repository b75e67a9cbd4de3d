"""Compare results kept with the benchmark runs: a compare is a small bench (one prompt, N runs on
two profiles), saved in the bench store so ``coder-tui bench history`` and ``bench show`` list and
print it next to the headless runs."""

from __future__ import annotations

import time
from pathlib import Path

from coder_tui.core.bench.compare import SEED, CompareResult, CompareRun
from coder_tui.core.bench.machine import probe_machine
from coder_tui.core.bench.store import BenchStore
from coder_tui.core.bench.types import BenchProfile, BenchResult, Sample, Settings
from coder_tui.core.config.loader import Profile

CATEGORY = "compare"


def _sample(run: CompareRun, round_: int) -> Sample:
    return Sample(
        profile=run.profile,
        category=CATEGORY,
        prompt_id=CATEGORY,
        round=round_,
        status=run.status,
        prompt_tokens_per_s=run.prompt_tokens_per_s or 0.0,
        predicted_n=run.tokens or 0,
        gen_tokens_per_s=run.generation_tokens_per_s or 0.0,
        ttft_s=run.ttft_s,
    )


def as_bench_result(
    result: CompareResult,
    profiles: dict[str, Profile],
    *,
    max_tokens: int,
    llama_server_version: str | None,
    started_at: float,
) -> BenchResult:
    samples = [_sample(r, i) for runs in (result.runs_a, result.runs_b) for i, r in enumerate(runs)]
    infos = []
    for name, runs in ((result.a, result.runs_a), (result.b, result.runs_b)):
        loads = tuple(r.load_time_s for r in runs[:1] if r.load_time_s is not None)
        model = profiles[name].model if name in profiles else Path(name)
        infos.append(BenchProfile(name, str(model), None, None, None, None, load_times_s=loads))
    settings = Settings(
        runs=len(result.runs_a),
        categories=(CATEGORY,),
        prompt_ids=(CATEGORY,),
        max_tokens=max_tokens,
        fixed_length=result.fixed_length,
        seed=SEED,
        warmup="none (compare mode)",
        order="A then B (compare mode), one swap between",
    )
    return BenchResult(
        started_at=started_at,
        finished_at=time.time(),
        interrupted=False,
        machine=probe_machine(llama_server_version),
        settings=settings,
        profiles=tuple(infos),
        samples=tuple(samples),
        notes=(f"compare mode, prompt: {result.prompt[:200]!r}",),
    )


def save_compare(db: Path, result: BenchResult) -> int:
    """Store it with the bench runs; returns the run id."""
    with BenchStore(db) as store:
        return store.save(result)
