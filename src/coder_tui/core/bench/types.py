"""The frozen values a benchmark produces: one request's sample, a profile as run, the machine, a run.

Owns only the shapes; filling them is ``runner``'s, ``machine``'s and ``quality``'s, turning them
into numbers and tables is ``stats``' and ``report``'s, keeping them is ``store``'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_RUNS = 3
"""Rounds over all profiles when none is asked for: the TUI's bench form and ``coder-tui bench``."""
DEFAULT_PROMPTS_PER_CATEGORY = 1
"""Prompts of each category a run asks (the first ones) when none is asked for; every category."""
DEFAULT_MAX_TOKENS = 128
"""Reply length of a bench or compare request when none is asked for."""
DEFAULT_FIXED_LENGTH = True
"""Bench and compare replies are exactly ``max_tokens`` long unless asked otherwise: equal work,
and no sample cut short by an early end-of-text (``ignore_eos``)."""
EARLY_END_FRACTION = 4
"""Without a fixed length, a reply that stopped at end-of-text before ``max_tokens //
EARLY_END_FRACTION`` tokens ended early: its speed is mostly start-up cost (3-7 t/s next to a
mean of 1941 t/s), so it is not counted and the report says how many there were."""


@dataclass(frozen=True)
class Sample:
    """One measured request. Speeds and token counts are the server's ``timings``; the time to
    first token is the client's (the only clock that sees the whole wait)."""

    profile: str
    category: str
    prompt_id: str
    round: int
    """0-based pass over all profiles (A B A B ...: round 0 is the first A and the first B)."""
    status: str
    """The stream's end status (``done`` for a good sample; others are kept but not counted)."""
    prompt_n: int = 0
    prompt_ms: float = 0.0
    prompt_tokens_per_s: float = 0.0
    predicted_n: int = 0
    predicted_ms: float = 0.0
    gen_tokens_per_s: float = 0.0
    ttft_s: float | None = None
    finish_reason: str | None = None

    @property
    def ok(self) -> bool:
        """Whether this sample finished: the stream ended and the server reported timings."""
        return self.status == "done" and self.predicted_n > 0

    def ended_early(self, max_tokens: int) -> bool:
        """Whether the reply stopped at end-of-text well before ``max_tokens`` (see
        ``EARLY_END_FRACTION``); a fixed-length reply never does (``ignore_eos``)."""
        return self.finish_reason == "stop" and self.predicted_n < max(
            1, max_tokens // EARLY_END_FRACTION
        )


@dataclass(frozen=True)
class BenchProfile:
    """A profile as one bench run measured it: what the seed's table reports (file, size, layer
    placement, argv) plus every load time. Kept in the run's stored record; the profile picker's
    summary of a model file is another thing (``gguf/profile_info.py`` ``ProfileInfo``)."""

    name: str
    model_path: str
    model_size_bytes: int | None
    n_layers: int | None
    """Repeating layers of the model (``block_count``)."""
    gpu_layers: int | None
    """Repeating layers whose weights sit in VRAM (0 without a GPU)."""
    cpu_moe_layers: int | None
    """Layers whose expert weights stay in RAM."""
    argv: tuple[str, ...] = ()
    """The llama-server command line the profile ran with (the profile's flags)."""
    load_times_s: tuple[float, ...] = ()


@dataclass(frozen=True)
class QualityOutcome:
    """One quality task on one profile: whether the extracted code passed the task's tests."""

    profile: str
    task_id: str
    passed: bool
    reason: str
    """``passed``, ``no code in reply``, ``failed``, ``timeout``, ``request failed: ...``."""
    output_tail: str = ""


@dataclass(frozen=True)
class Machine:
    """The machine a run measured: hardware, software versions. ``None`` where unknown."""

    gpu: str
    """GPU names with VRAM (``NVIDIA RTX 4090 24 GiB``), or why there is none (``no NVIDIA GPU``)."""
    gpu_driver: str | None
    vram_total_bytes: int | None
    cpu_model: str | None
    cpu_cores: int | None
    """Physical cores."""
    cpu_threads: int | None
    ram_total_bytes: int | None
    os: str
    llama_server_version: str | None
    coder_tui_version: str


@dataclass(frozen=True)
class Settings:
    """How the run was made fair: what every request asked for, and what was measured."""

    runs: int
    categories: tuple[str, ...]
    prompt_ids: tuple[str, ...]
    max_tokens: int
    fixed_length: bool
    """``ignore_eos``: every reply is exactly ``max_tokens`` long, so profiles do equal work."""
    temperature: float = 0.0
    seed: int = 42
    cache_prompt: bool = False
    warmup: str = "one short request after every load, not measured"
    order: str = "interleaved: round r loads each profile in turn (A B A B ...)"
    quality: bool = False
    significance: str = "Welch's t-test, two-sided, p < 0.05"


@dataclass(frozen=True)
class BenchResult:
    """A finished (or interrupted) run: everything needed to print or compare it later."""

    started_at: float
    finished_at: float
    interrupted: bool
    machine: Machine
    settings: Settings
    profiles: tuple[BenchProfile, ...]
    samples: tuple[Sample, ...] = ()
    quality: tuple[QualityOutcome, ...] = ()
    run_id: int | None = None
    """The store's id once saved."""
    notes: tuple[str, ...] = field(default=())
