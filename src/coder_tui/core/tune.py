"""The autotuner: a measured sweep of ``--n-cpu-moe`` (and ``-ub``, threads) around the fit advice.

Owns ``Candidate`` and ``Trial``, the sweep order, early stopping, the time budget, the choice of
the winner and ``tune`` itself: an async generator of typed events (``TrialStarted``,
``TrialFinished``, ``TuneFinished``) that the CLI prints. Each trial starts llama-server for the
profile with the candidate's flags (``server/process.py``), runs a fixed-length generation
(``ignore_eos``) and one long prompt (``client.py``), samples the server's VRAM through NVML
(``metrics/gpu.py``; ``None`` without a GPU) and stops the server.

Order and early stop: candidates run from the least VRAM-hungry to the most (more ``--n-cpu-moe``
first), so speeds rise as the sweep goes; when one runs out of memory (its start fails with an
out-of-memory reason, or it dies mid-run with one), every later candidate that needs at least as
much VRAM (``-ngl`` at least, ``--n-cpu-moe`` at most, ``-ub`` at least) is skipped. A trial is
not started when the time spent per trial so far says it would end past the budget.

The winner is the fastest generation among trials that ran and fit with margin (peak VRAM +
margin within the VRAM there was when the sweep began; unknown VRAM counts as fitting).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from coder_tui.core.config import Config, Profile

_NGL_FLAGS = ("-ngl", "--n-gpu-layers", "--gpu-layers")
_PLACEMENT_FLAGS = (*_NGL_FLAGS, "-ncmoe", "--n-cpu-moe")
_UBATCH_FLAGS = ("-ub", "--ubatch-size")
_THREAD_FLAGS = ("-t", "--threads")
_OOM_NEEDLES = ("out of memory", "ran out of", "cudamalloc failed", "failed to allocate")
_BIG = 1 << 30
_FILLER = (
    "expert layer cache batch thread memory speed quant weight tensor load save read write "
    "open close start stop check result output input model token value data index count"
)


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
    run_one = measure or measure_trial
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


def filler_text(n_words: int, seed: int = 0) -> str:
    """Deterministic prose-like words for the long prompt (no repeats a cache could exploit)."""
    words = _FILLER.split(" ")
    return " ".join(words[(i * 7 + seed + i // len(words)) % len(words)] for i in range(n_words))


async def _prompt_text(url: str, target_tokens: int) -> str:
    """Text of about ``target_tokens`` tokens, sized with the server's ``/tokenize``."""
    import httpx

    n_words = max(target_tokens // 2, 1)
    text = filler_text(n_words)
    async with httpx.AsyncClient(base_url=url, trust_env=False, timeout=30.0) as http:
        for _ in range(2):
            try:
                resp = await http.post("/tokenize", json={"content": text})
                count = len(resp.json().get("tokens", []))
            except (httpx.HTTPError, ValueError, AttributeError):
                return text
            if count <= 0 or abs(count - target_tokens) <= target_tokens // 20:
                break
            n_words = max(int(n_words * target_tokens / count), 1)
            text = filler_text(n_words)
    return text


class _VramWatch:
    """Samples the server's VRAM every ``interval_s`` in a thread; ``peak`` is the largest."""

    def __init__(self, pid: int, gpu_index: int, interval_s: float = 0.25) -> None:
        from coder_tui.core.metrics.gpu import GpuProbe

        self.pid, self.gpu_index, self.interval_s = pid, gpu_index, interval_s
        self.probe = GpuProbe()
        self.peak: int | None = None
        self._task: asyncio.Task[None] | None = None

    def _sample(self) -> None:
        import psutil

        try:
            pids = {self.pid, *(c.pid for c in psutil.Process(self.pid).children(recursive=True))}
        except psutil.Error:
            pids = {self.pid}
        snap = self.probe.sample(pids)
        for dev in snap.devices:
            if dev.index == self.gpu_index and dev.server_vram_bytes is not None:
                self.peak = max(self.peak or 0, dev.server_vram_bytes)

    async def _loop(self) -> None:
        while True:
            await asyncio.to_thread(self._sample)
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):  # one last look, then let NVML go
            await asyncio.to_thread(self._sample)
        await asyncio.to_thread(self.probe.close)


async def measure_trial(
    config: Config, profile: Profile, cand: Candidate, settings: TuneSettings
) -> Trial:
    """Start the server with ``cand``, time a generation and a long prompt, stop it."""
    from coder_tui.core.client import ChatClient, StreamEnd
    from coder_tui.core.paths import app_paths
    from coder_tui.core.server.process import ServerManager, StartFailed

    paths = app_paths()
    manager = ServerManager(config.server, log_dir=paths.log_dir, cache_dir=paths.cache_dir)
    try:
        ready = await manager.start(candidate_profile(profile, cand))
    except StartFailed as exc:
        first = str(exc).splitlines()[0] if str(exc) else "did not start"
        return Trial(cand, TrialStatus.OOM if is_oom(first) else TrialStatus.FAILED, message=first)
    watch = _VramWatch(ready.pid or 0, settings.gpu_index) if ready.pid else None
    if watch is not None:
        watch.start()
    ends: list[StreamEnd] = []
    try:
        async with ChatClient(manager.url, stall_timeout_s=120.0) as client:
            extra: dict[str, Any] = {"ignore_eos": True, "cache_prompt": False}
            story = [{"role": "user", "content": "Write a long story about a server."}]
            long = [
                {"role": "user", "content": await _prompt_text(manager.url, settings.prompt_tokens)}
            ]
            asks = [(story, settings.gen_tokens)] * max(settings.repeats, 1) + [(long, 1)]
            for messages, max_tokens in asks:
                stream = client.stream_chat(
                    messages, max_tokens=max_tokens, temperature=0.0, seed=1, extra=extra
                )
                async for event in stream:
                    if isinstance(event, StreamEnd):
                        ends.append(event)
                if ends[-1].status != "done":
                    break
    finally:
        if watch is not None:
            await watch.stop()
        await manager.stop()
    # This run's lines (cleared at start), read after the stop has drained its output: a crash's
    # backtrace can push the out-of-memory message far from the end.
    tail = " ".join(manager.log_lines)
    peak = watch.peak if watch is not None else None
    fits = None
    if peak is not None and settings.vram_budget_bytes is not None:
        fits = peak + settings.margin_bytes <= settings.vram_budget_bytes
    bad = next((e for e in ends if e.status != "done"), None)
    if bad is not None or len(ends) < max(settings.repeats, 1) + 1:
        why = bad.message or bad.status if bad is not None else "no reply"
        # Not "and the server exited": the stream can end before the dying server is reaped.
        status = TrialStatus.OOM if is_oom(tail) else TrialStatus.FAILED
        return Trial(cand, status, peak_vram_bytes=peak, load_time_s=ready.load_time_s, message=why)
    gens = [e.timings for e in ends[:-1] if e.timings is not None]
    gen = max(gens, key=lambda t: t.predicted_per_second, default=None)
    prompt = ends[-1].timings
    return Trial(
        cand,
        TrialStatus.OK,
        generation_tokens_per_s=gen.predicted_per_second if gen else None,
        prompt_tokens_per_s=prompt.prompt_per_second if prompt else None,
        peak_vram_bytes=peak,
        load_time_s=ready.load_time_s,
        fits_with_margin=fits,
        message=f"prompt {prompt.prompt_n} tokens" if prompt else "",
    )


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
