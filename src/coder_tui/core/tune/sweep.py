"""The autotuner: a measured sweep of ``--n-cpu-moe`` (and ``-ub``, threads) around the fit advice.

Owns the sweep order, early stopping, the time budget, the choice of the winner and ``tune``
itself: an async generator of typed events (``TrialStarted``, ``TrialFinished``,
``TuneFinished``, from ``types.py``) that the CLI prints. Each trial (``trial.py``) starts
llama-server for the profile with the candidate's flags, runs a fixed-length generation and one
long prompt, samples the server's VRAM through NVML and stops the server.

Order and early stop: candidates run from the least VRAM-hungry to the most (more ``--n-cpu-moe``
first), so speeds rise as the sweep goes; when one runs out of memory (its start fails with an
out-of-memory reason, or it dies mid-run with one), every later candidate that needs at least as
much VRAM (``-ngl`` at least, ``--n-cpu-moe`` at most, ``-ub`` at least) is skipped. A trial is
not started when the time spent per trial so far says it would end past the budget.

The winner is the fastest generation among trials that ran and fit with margin (peak VRAM +
margin within the VRAM there was when the sweep began; unknown VRAM counts as fitting).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from coder_tui.core.config.loader import Config, Profile
from coder_tui.core.tune.trial import measure_trial
from coder_tui.core.tune.types import (
    Candidate,
    Trial,
    TrialFinished,
    TrialStarted,
    TrialStatus,
    TuneEvent,
    TuneFinished,
    TuneSettings,
)


def sweep_order(cands: Sequence[Candidate], s: TuneSettings) -> list[Candidate]:
    """Least VRAM first: predicted VRAM if known, else more ``--n-cpu-moe`` / less ``-ngl``."""
    unique = list(dict.fromkeys(cands))
    return sorted(
        unique,
        key=lambda c: (
            c.predicted_vram_bytes if c.predicted_vram_bytes is not None else -1,
            s.default_ngl if c.n_gpu_layers is None else c.n_gpu_layers,
            -c.n_cpu_moe,
            c.ubatch or s.default_ubatch,
            c.threads or 0,
        ),
    )


def pick_winner(trials: Sequence[Trial]) -> Trial | None:
    """The fastest generation among trials that ran and did not exceed the VRAM with margin."""
    ok = [
        t
        for t in trials
        if t.status is TrialStatus.OK
        and t.generation_tokens_per_s is not None
        and t.fits_with_margin is not False
    ]
    return max(
        ok,
        key=lambda t: (t.generation_tokens_per_s or 0.0, t.prompt_tokens_per_s or 0.0),
        default=None,
    )


Measure = Callable[[Config, Profile, Candidate, TuneSettings], Awaitable[Trial]]


async def tune(
    config: Config,
    profile: Profile,
    candidates: Sequence[Candidate],
    settings: TuneSettings,
    *,
    measure: Measure | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[TuneEvent]:
    """Measure ``candidates`` in sweep order; yields progress, ends with ``TuneFinished``."""
    run_one: Measure = measure_trial if measure is None else measure
    order = sweep_order(candidates, settings)
    total = len(order)
    trials: list[Trial] = []
    started = clock()
    ooms: list[Candidate] = []
    for i, cand in enumerate(order, 1):
        spent = clock() - started
        ran = [t for t in trials if t.status is not TrialStatus.SKIPPED]
        per_trial = spent / len(ran) if ran else 0.0
        blocker = next(
            (
                o
                for o in ooms
                if cand.needs_at_least(o, settings.default_ngl, settings.default_ubatch)
            ),
            None,
        )
        if blocker is not None:
            trial = Trial(
                cand, TrialStatus.SKIPPED, message=f"needs more VRAM than {blocker.label()}"
            )
        elif ran and spent + per_trial > settings.budget_s:
            trial = Trial(cand, TrialStatus.SKIPPED, message="over the time budget")
        else:
            yield TrialStarted(i, total, cand)
            t0 = clock()
            trial = await run_one(config, profile, cand, settings)
            trial = dataclasses.replace(trial, elapsed_s=clock() - t0)
            if trial.status is TrialStatus.OOM:
                ooms.append(cand)
        trials.append(trial)
        yield TrialFinished(i, total, trial)
    yield TuneFinished(tuple(trials), pick_winner(trials))


def around(best_cut: int, start: int, n_layer: int, span: int = 2) -> list[int]:
    """``--n-cpu-moe`` values within ``span`` of ``best_cut`` (values <= ``start`` act as 0)."""
    values = {min(max(best_cut + d, start), n_layer) for d in range(-span, span + 1)}
    return sorted(0 if v <= start else v for v in values)
