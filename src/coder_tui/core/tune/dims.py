"""Tune what matters, one dimension at a time: placement, threads, load mode, prompt threads, ubatch.

Owns ``Dimension`` (a name, the candidates' changes to try in order, and what it is judged on:
decode or prompt tokens/s), ``default_dimensions`` (the issue's list: the placements around the
calibrated optimum, ``-t``, ``--load-mode none`` vs mmap, ``-tb``, ``-ub`` for prompt speed, and
draft-MTP when the file has an MTP block), ``significant`` and ``tune_dimensions``: an async
generator that measures the base candidate, then each dimension's variants on top of the best so
far, keeps a variant only when its gain is significant (the means of the generations differ by
more than ``k`` standard errors and by at least ``min_gain``; prompt speed, one sample a trial,
by ``min_prompt_gain``), stops a dimension early when its first two variants are flat or worse,
and ends with the winner: the fastest that fit with margin. Measuring one candidate is
``trial.py``'s; the events and values are ``types.py``'s; the sweep of plain ``--n-cpu-moe``
values is ``sweep.py``'s.
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from coder_tui.core.config.loader import Config, Profile
from coder_tui.core.tune.sweep import Measure
from coder_tui.core.tune.trial import measure_trial
from coder_tui.core.tune.types import (
    Candidate,
    Trial,
    TrialFinished,
    TrialStarted,
    TrialStatus,
    TuneFinished,
    TuneSettings,
)


@dataclass(frozen=True)
class Dimension:
    name: str
    changes: tuple[dict[str, Any], ...]
    """``Candidate`` fields to replace, nearest first."""
    metric: str = "generation"
    """``generation`` (decode tokens/s) or ``prompt``."""


@dataclass(frozen=True)
class DimensionDone:
    """One dimension's verdict."""

    name: str
    baseline: Trial
    best: Trial
    gain_pct: float
    significant: bool
    tried: int
    stopped_early: bool


def _value(t: Trial, metric: str) -> float:
    v = t.prompt_tokens_per_s if metric == "prompt" else t.generation_tokens_per_s
    return v or 0.0


def significant(
    new: Trial, base: Trial, metric: str, *, k: float = 2.0, min_gain: float = 0.01,
    min_prompt_gain: float = 0.05,
) -> tuple[bool, float]:  # fmt: skip
    """(whether ``new`` beats ``base`` beyond noise, its gain in %)."""
    b, n = _value(base, metric), _value(new, metric)
    if b <= 0 or n <= 0 or new.status is not TrialStatus.OK or new.fits_with_margin is False:
        return False, 0.0
    gain = (n - b) / b
    if metric == "prompt" or len(new.generation_samples) < 2 or len(base.generation_samples) < 2:
        return gain >= (min_prompt_gain if metric == "prompt" else min_gain * 3), gain * 100
    a, c = base.generation_samples, new.generation_samples
    se = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(c) / len(c))
    diff = statistics.fmean(c) - statistics.fmean(a)
    return diff > k * se and gain >= min_gain, gain * 100


def default_dimensions(
    placements: Sequence[Candidate],
    *,
    cores: int | None = None,
    ubatches: Sequence[int] = (1024, 2048),
    mtp: bool = False,
) -> list[Dimension]:
    """The issue's dimensions, in the order they are tried."""
    n = max(cores or os.cpu_count() or 1, 1)
    threads = sorted({max(n * 3 // 4, 1), max(n // 2, 1), n} - {n}, reverse=True)
    dims = [
        Dimension(
            "placement",
            tuple(
                {"n_gpu_layers": c.n_gpu_layers, "n_cpu_moe": c.n_cpu_moe, "cpu_parts": c.cpu_parts}
                for c in placements
            ),
        ),
        Dimension("threads", tuple({"threads": t} for t in threads)),
        Dimension("load mode", ({"mmap": False},)),
        Dimension("prompt threads", tuple({"threads_batch": t} for t in (n, n * 3 // 4)), "prompt"),
        Dimension("ubatch", tuple({"ubatch": u} for u in ubatches), "prompt"),
    ]
    if mtp:
        dims.append(Dimension("draft-MTP", ({"extra": ("--spec-type", "draft-mtp")},)))
    return [d for d in dims if d.changes]


async def tune_dimensions(
    config: Config,
    profile: Profile,
    base: Candidate,
    dims: Sequence[Dimension],
    settings: TuneSettings,
    *,
    measure: Measure | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[TrialStarted | TrialFinished | DimensionDone | TuneFinished]:
    """Measure ``base``, then each dimension on top of the best so far (see the module doc)."""
    run: Measure = measure or measure_trial
    total = 1 + sum(len(d.changes) for d in dims)
    trials: list[Trial] = []
    started = clock()

    async def one(cand: Candidate) -> AsyncIterator[TrialStarted | TrialFinished]:
        i = len(trials) + 1
        yield TrialStarted(i, total, cand)
        t0 = clock()
        trial = dataclasses.replace(
            await run(config, profile, cand, settings), elapsed_s=clock() - t0
        )
        trials.append(trial)
        yield TrialFinished(i, total, trial)

    async for event in one(base):
        yield event
    best = trials[-1]
    for dim in dims:
        dim_base = best
        tried, flat, stopped = 0, 0, False
        for change in dim.changes:
            spent = clock() - started
            if spent + spent / len(trials) > settings.budget_s:
                stopped = True
                break
            cand = dataclasses.replace(best.candidate, **change)
            if cand == best.candidate:
                continue
            async for event in one(cand):
                yield event
            tried += 1
            trial = trials[-1]
            better, _ = significant(trial, best, dim.metric)
            if dim.metric == "prompt" and better:  # prompt speed may not cost decode speed
                better = _value(trial, "generation") >= 0.97 * _value(best, "generation")
            if better:
                best, flat = trial, 0
            else:
                flat += 1
                if flat >= 2 and tried <= 2:  # the first two are flat or worse: stop here
                    stopped = tried < len(dim.changes)
                    break
        ok, gain = significant(best, dim_base, dim.metric)
        yield DimensionDone(
            dim.name, dim_base, best, gain, ok and best is not dim_base, tried, stopped
        )
    winner = best if best.status is TrialStatus.OK and best.fits_with_margin is not False else None
    yield TuneFinished(tuple(trials), winner)
