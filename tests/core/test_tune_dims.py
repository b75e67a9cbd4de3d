"""Tuning one dimension at a time: significance, early stop when flat, the winner, the flags a
candidate passes (threads, -tb, --load-mode none, an -ot partial layer) and the profile it runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from coder_tui.core.config.loader import Config, Profile, ServerSettings
from coder_tui.core.tune.dims import (
    Dimension,
    DimensionDone,
    default_dimensions,
    significant,
    tune_dimensions,
)
from coder_tui.core.tune.trial import candidate_profile
from coder_tui.core.tune.types import Candidate, Trial, TrialStatus, TuneFinished, TuneSettings

PROFILE = Profile(name="p", model=Path("m.gguf"), ctx=4096, n_gpu_layers=49, threads=16)
CONFIG = Config(path=None, server=ServerSettings(), profiles={"p": PROFILE}, default_profile="p")


def trial(c: Candidate, samples: tuple[float, ...], prompt: float = 100.0) -> Trial:
    return Trial(
        c, TrialStatus.OK, generation_tokens_per_s=max(samples), prompt_tokens_per_s=prompt,
        generation_samples=samples,
    )  # fmt: skip


def test_significance_needs_more_than_the_noise() -> None:
    base = trial(Candidate(49, 8), (79.0, 80.0, 81.0))
    assert significant(trial(Candidate(49, 8), (84.0, 84.5, 83.5)), base, "generation")[0]
    noisy = trial(Candidate(49, 8), (78.0, 85.0, 80.5))  # +1 % on average, but within the noise
    assert not significant(noisy, base, "generation")[0]
    over = trial(Candidate(49, 7), (90.0, 91.0, 90.5))
    over = Trial(**{**over.__dict__, "fits_with_margin": False})
    assert not significant(over, base, "generation")[0]  # no gain counts that breaks the margin
    assert significant(trial(Candidate(49, 8), (80.0,), 110.0), base, "prompt")[0]
    assert not significant(trial(Candidate(49, 8), (80.0,), 103.0), base, "prompt")[0]


SPEED = {  # decode t/s by (threads, mmap, ubatch): the issue's host shape
    (16, None, None): 79.6, (12, None, None): 75.2, (8, None, None): 59.6,
    (16, False, None): 84.1, (16, False, 1024): 84.0, (16, False, 2048): 83.9,
}  # fmt: skip


async def fake_measure(
    config: Config, profile: Profile, cand: Candidate, settings: TuneSettings
) -> Trial:
    key = (cand.threads or 16, cand.mmap, cand.ubatch)
    tps = SPEED.get(key, 70.0) - (cand.n_cpu_moe - 8) * 5.0
    prompt = {None: 1000.0, 1024: 1500.0, 2048: 1700.0}[cand.ubatch]
    return trial(cand, (tps - 0.3, tps, tps - 0.1), prompt)


async def test_dimensions_keep_only_significant_gains_and_stop_when_flat() -> None:
    dims = [
        Dimension("placement", ({"n_cpu_moe": 9}, {"n_cpu_moe": 10}, {"n_cpu_moe": 11})),
        Dimension("threads", ({"threads": 12}, {"threads": 8})),
        Dimension("load mode", ({"mmap": False},)),
        Dimension("ubatch", ({"ubatch": 1024}, {"ubatch": 2048}), "prompt"),
    ]
    events = [
        e
        async for e in tune_dimensions(
            CONFIG, PROFILE, Candidate(49, 8), dims, TuneSettings(), measure=fake_measure
        )
    ]
    done = {e.name: e for e in events if isinstance(e, DimensionDone)}
    assert done["placement"].tried == 2 and done["placement"].stopped_early  # 9, 10 worse: stop
    assert not done["placement"].significant and not done["threads"].significant
    assert done["load mode"].significant and done["load mode"].gain_pct == pytest.approx(
        5.6, abs=0.2
    )
    # ubatch is judged on prompt speed, and may not cost decode speed
    assert done["ubatch"].significant and done["ubatch"].best.candidate.ubatch == 2048
    final = events[-1]
    assert isinstance(final, TuneFinished) and final.winner is not None
    assert final.winner.candidate == Candidate(49, 8, ubatch=2048, mmap=False)
    assert len(final.trials) == 1 + 2 + 2 + 1 + 2


def test_default_dimensions_follow_the_issue() -> None:
    dims = default_dimensions([Candidate(49, 7, cpu_parts=("down",))], cores=16, mtp=True)
    names = [d.name for d in dims]
    assert names == ["placement", "threads", "load mode", "prompt threads", "ubatch", "draft-MTP"]
    assert dims[1].changes == ({"threads": 12}, {"threads": 8})
    assert dims[2].changes == ({"mmap": False},)
    assert dims[-1].changes == ({"extra": ("--spec-type", "draft-mtp")},)


def test_a_candidate_runs_as_a_profile_with_its_flags() -> None:
    cand = Candidate(49, 7, threads=12, threads_batch=16, mmap=False, cpu_parts=("down",))
    assert cand.flags() == [
        "-ngl", "49", "-ot", r"blk\.7\.ffn_(down)_exps=CPU", "--n-cpu-moe", "7",
        "-t", "12", "-tb", "16", "--load-mode", "none",
    ]  # fmt: skip
    base = Profile(
        name="p", model=Path("m.gguf"), n_gpu_layers=42, n_cpu_moe=10, threads=16,
        extra_args=("-tb", "8", "--n-cpu-moe", "3", "--mlock"),
    )  # fmt: skip
    p = candidate_profile(base, cand)
    assert (p.n_gpu_layers, p.n_cpu_moe, p.threads, p.mmap) == (49, 7, 12, False)
    assert p.override_tensor == (r"blk\.7\.ffn_(down)_exps=CPU",)
    assert p.extra_args == ("--mlock", "-tb", "16")
