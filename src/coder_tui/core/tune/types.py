"""The autotuner's values: a candidate setting, a trial's result, the settings, the events.

Shared by the sweep (``sweep.py``: order, early stop, budget, winner) and one trial
(``trial.py``: start, measure, stop), which both import from here and never from each other
beyond ``sweep`` calling ``trial.measure_trial``. The flags a candidate passes are the
profile-flag table's (``config/flags.py``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from coder_tui.core.config.cmdline import flag_args

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
    threads_batch: int | None = None
    """``-tb``: the threads of prompt processing."""
    mmap: bool | None = None
    """``False``: load without mmap (``--load-mode none``, what llama.cpp suggests when tensors
    are overridden to the CPU)."""
    cpu_parts: tuple[str, ...] = ()
    """Expert matrices of layer ``n_cpu_moe`` kept in RAM too (an ``-ot`` rule, as fit offers)."""
    extra: tuple[str, ...] = ()
    """More flags (``--spec-type draft-mtp``)."""

    def overrides(self) -> tuple[str, ...]:
        if not self.cpu_parts:
            return ()
        return (rf"blk\.{self.n_cpu_moe}\.ffn_({'|'.join(self.cpu_parts)})_exps=CPU",)

    def flags(self) -> list[str]:
        """The candidate's llama-server flags (``-ngl 99 --n-cpu-moe 2``)."""
        return [
            *flag_args("n_gpu_layers", self.n_gpu_layers),
            *flag_args("override_tensor", self.overrides()),
            *flag_args("n_cpu_moe", self.n_cpu_moe),
            *flag_args("ubatch", self.ubatch),
            *flag_args("threads", self.threads),
            *([] if self.threads_batch is None else ["-tb", str(self.threads_batch)]),
            *(["--load-mode", "none"] if self.mmap is False else []),
            *self.extra,
        ]

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
    generation_samples: tuple[float, ...] = ()
    """Every generation's tokens/s (the significance of a gain is judged on them)."""


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
