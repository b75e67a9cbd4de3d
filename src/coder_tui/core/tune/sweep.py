"""The autotuner: a measured sweep of ``--n-cpu-moe`` (and ``-ub``, threads) around the fit advice.

Owns ``Candidate`` and ``Trial``, the sweep order, early stopping, the time budget, the choice of
the winner and ``tune`` itself: an async generator of typed events (``TrialStarted``,
``TrialFinished``, ``TuneFinished``) that the CLI prints. Each trial (``tune_trial.py``) starts
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
import enum
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from coder_tui.core.config.loader import Config, Profile

_NGL_FLAGS = ("-ngl", "--n-gpu-layers", "--gpu-layers")
_PLACEMENT_FLAGS = (*_NGL_FLAGS, "-ncmoe", "--n-cpu-moe")
_UBATCH_FLAGS = ("-ub", "--ubatch-size")
_THREAD_FLAGS = ("-t", "--threads")
_OOM_NEEDLES = ("out of memory", "ran out of", "cudamalloc failed", "failed to allocate")
_BIG = 1 << 30


@dataclass(frozen=True)
class Candidate:
    """One setting to measure: ``None`` keeps the profile's value."""

    n_gpu_layers: int | None
    n_cpu_moe: int
    ubatch: int | None = None
    threads: int | None = None
    predicted_vram_bytes: int | None = None

    def flags(self) -> list[str]:
        out = [] if self.n_gpu_layers is None else ["-ngl", str(self.n_gpu_layers)]
        out += ["--n-cpu-moe", str(self.n_cpu_moe)]
        out += [] if self.ubatch is None else ["-ub", str(self.ubatch)]
        return out + ([] if self.threads is None else ["-t", str(self.threads)])

    def label(self) -> str:
        return " ".join(self.flags())

    def needs_at_least(self, other: Candidate, default_ngl: int, default_ub: int) -> bool:
        """Whether this needs at least as much VRAM as ``other`` (same or more on the GPU)."""
        ngl = _BIG if self.n_gpu_layers is None else self.n_gpu_layers
        other_ngl = _BIG if other.n_gpu_layers is None else other.n_gpu_layers
        ngl, other_ngl = (default_ngl if n == _BIG else n for n in (ngl, other_ngl))
        return (
            ngl >= other_ngl
            and self.n_cpu_moe <= other.n_cpu_moe
            and (self.ubatch or default_ub) >= (other.ubatch or default_ub)
        )


class TrialStatus(enum.Enum):
    OK = "ok"
    OOM = "out of memory"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Trial:
    """What one candidate measured (speeds from llama-server's own timings)."""

    candidate: Candidate
    status: TrialStatus
    generation_tokens_per_s: float | None = None
    prompt_tokens_per_s: float | None = None
    peak_vram_bytes: int | None = None
    load_time_s: float | None = None
    elapsed_s: float = 0.0
    message: str = ""
    fits_with_margin: bool | None = None


@dataclass(frozen=True)
class TrialStarted:
    index: int
    total: int
    candidate: Candidate


@dataclass(frozen=True)
class TrialFinished:
    index: int
    total: int
    trial: Trial


@dataclass(frozen=True)
class TuneFinished:
    trials: tuple[Trial, ...]
    winner: Trial | None


TuneEvent = TrialStarted | TrialFinished | TuneFinished


@dataclass(frozen=True)
class TuneSettings:
    """How long and how hard to measure, and the VRAM to stay within."""

    budget_s: float = 600.0
    gen_tokens: int = 128
    prompt_tokens: int = 2048
    vram_budget_bytes: int | None = None
    """VRAM free when the sweep began (``None``: unknown, e.g. no GPU)."""
    margin_bytes: int = 512 << 20
    gpu_index: int = 0
    default_ngl: int = 999
    """The profile's ``-ngl`` when a candidate leaves it unset (for the VRAM ordering)."""
    default_ubatch: int = 512
    repeats: int = 3
    """Generations per trial; the fastest counts (the first can pay for warm-up)."""


def is_oom(text: str) -> bool:
    """Whether a start failure or exit reason says memory ran out."""
    low = text.lower()
    return any(n in low for n in _OOM_NEEDLES)


def _strip_flags(args: Sequence[str], flags: Sequence[str]) -> tuple[str, ...]:
    """``args`` without ``flags`` (and their values) and ``--cpu-moe``."""
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in flags:
            skip = True
        elif arg in ("-cmoe", "--cpu-moe") or arg.split("=", 1)[0] in flags:
            continue
        else:
            out.append(arg)
    return tuple(out)


def candidate_profile(profile: Profile, cand: Candidate) -> Profile:
    """``profile`` with the candidate's flags (placement flags in ``extra_args`` removed)."""
    return dataclasses.replace(
        profile,
        n_gpu_layers=profile.n_gpu_layers if cand.n_gpu_layers is None else cand.n_gpu_layers,
        n_cpu_moe=cand.n_cpu_moe or None,
        ubatch=profile.ubatch if cand.ubatch is None else cand.ubatch,
        batch=(
            max(profile.batch, cand.ubatch)
            if profile.batch is not None and cand.ubatch is not None
            else profile.batch
        ),
        threads=profile.threads if cand.threads is None else cand.threads,
        extra_args=_strip_flags(
            profile.extra_args,
            (
                *_PLACEMENT_FLAGS,
                *(_UBATCH_FLAGS if cand.ubatch is not None else ()),
                *(_THREAD_FLAGS if cand.threads is not None else ()),
            ),
        ),
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
    if measure is None:
        from coder_tui.core.tune.trial import measure_trial

        measure = measure_trial
    run_one: Measure = measure
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


def profile_to_table(profile: Profile) -> dict[str, Any]:
    """A profile as a ``[profiles.NAME]`` table of config keys (for the state file)."""
    table: dict[str, Any] = {}
    for f in dataclasses.fields(Profile):
        value = getattr(profile, f.name)
        if f.name in ("name", "inherit") or value is None or value == () or value == {}:
            continue
        if f.name == "model":
            value = str(value)
        elif f.name == "env":
            value = dict(value)
        elif f.name == "extra_args":
            value = list(value)
        table[f.name] = value
    return table
