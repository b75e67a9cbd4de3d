"""Running a benchmark fairly, as an async generator of typed progress events.

Owns the order of work and what each request asks for. Fair by construction:

* every request: temperature 0, a fixed seed, ``cache_prompt: false`` (no reuse of an earlier
  prompt's KV cache), the same ``max_tokens``; with ``fixed_length`` also ``ignore_eos`` so every
  reply is exactly ``max_tokens`` tokens and profiles are timed on equal work;
* one warm-up request after every load of a profile (so also once per profile), not measured;
* profiles interleaved: round r loads A, runs every prompt, swaps to B, runs every prompt, ...
  so a drift of the machine (heat, a background job) hits all profiles alike. This always swaps,
  even where two profiles would fit at once: one server at a time is the case the seed had;
* speeds and token counts from the server's own ``timings``; only the time to first token is the
  client's (``StreamEnd.ttft_s``).

Talking to the server is a ``Backend`` (``ServerBackend``: ``ServerManager`` + ``ChatClient``; a
swap is ``stop()`` then ``start(other)``); tests pass a fake one. Statistics and tables are
``stats``'/``report``'s. Stopping: ``BenchRun.cancel()`` ends after the current request; cancelling
the task that iterates also works. Either way the server is stopped and ``result()`` holds every
finished sample. Iterate inside ``contextlib.aclosing(run.events())``: a consumer cancelled while
it is busy between two events (not inside the generator) then still closes the generator at once,
which stops the server; without it the stop waits for the garbage collector.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from coder_tui.core.bench.machine import bench_profile, probe_machine
from coder_tui.core.bench.prompts import WARMUP_PROMPT, BenchPrompt
from coder_tui.core.bench.quality import TASKS, QualityTask, grade
from coder_tui.core.bench.types import (
    BenchProfile,
    BenchResult,
    Machine,
    QualityOutcome,
    Sample,
    Settings,
)
from coder_tui.core.chat.client import ChatClient
from coder_tui.core.chat.events import StreamEnd
from coder_tui.core.config.loader import Profile, ServerSettings
from coder_tui.core.server.process import ServerManager

QUALITY_MAX_TOKENS = 768
WARMUP_MAX_TOKENS = 8


class Backend(Protocol):
    """What the runner needs from a server: load a profile, answer one prompt, unload."""

    version: str | None

    def argv(self, profile: Profile) -> list[str]:
        """The command line ``load`` would run (blocking; may probe the binary)."""
        ...

    async def load(self, profile: Profile) -> float:
        """Stop whatever runs, start ``profile``; the load time in seconds."""
        ...

    async def complete(
        self, prompt: str, *, max_tokens: int, ignore_eos: bool, seed: int, temperature: float
    ) -> StreamEnd:
        """One chat request; its ``StreamEnd`` (with ``timings``)."""
        ...

    async def unload(self) -> None:
        """Stop the server, if one runs."""
        ...


class ServerBackend:
    """The real thing: one ``ServerManager`` and a ``ChatClient`` on the loaded server."""

    def __init__(
        self,
        settings: ServerSettings,
        *,
        log_dir: Path,
        cache_dir: Path | None = None,
        stall_timeout_s: float = 300.0,
        manager: ServerManager | None = None,
    ) -> None:
        # The TUI hands in its own manager (it owns the port); the CLI lets the backend make one.
        self.manager = manager or ServerManager(settings, log_dir=log_dir, cache_dir=cache_dir)
        self.stall_timeout_s = stall_timeout_s
        self.version: str | None = None
        self._client: ChatClient | None = None

    def argv(self, profile: Profile) -> list[str]:
        argv = self.manager.prepare(profile)
        self.version = self.manager.version
        return argv

    async def load(self, profile: Profile) -> float:
        await self.unload()
        ready = await self.manager.start(profile)
        self.version = self.manager.version
        self._client = ChatClient(self.manager.url, stall_timeout_s=self.stall_timeout_s)
        return ready.load_time_s

    async def complete(
        self, prompt: str, *, max_tokens: int, ignore_eos: bool, seed: int, temperature: float
    ) -> StreamEnd:
        if self._client is None:
            return StreamEnd(status="connection_lost", message="no server loaded")
        extra: dict[str, object] = {"cache_prompt": False}
        if ignore_eos:
            extra["ignore_eos"] = True
        stream = self._client.stream_chat(
            [{"role": "user", "content": prompt}],
            max_tokens=max_tokens,
            temperature=temperature,
            seed=seed,
            extra=extra,
        )
        end: StreamEnd | None = None
        async for event in stream:
            if isinstance(event, StreamEnd):
                end = event
        return end or StreamEnd(status="bad_stream", message="stream ended without an end")

    async def unload(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
        await self.manager.stop()


# -- events ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """Requests done of the total (warm-ups not counted), and an estimate of the time left."""

    done: int
    total: int
    elapsed_s: float
    eta_s: float | None


@dataclass(frozen=True)
class Planned:
    """The run is about to start: ``order`` is (round, profile) in the order they will load."""

    order: tuple[tuple[int, str], ...]
    total_requests: int
    machine: Machine


@dataclass(frozen=True)
class Loading:
    profile: str
    round: int


@dataclass(frozen=True)
class Loaded:
    profile: str
    round: int
    load_time_s: float


@dataclass(frozen=True)
class Measured:
    sample: Sample
    progress: Progress


@dataclass(frozen=True)
class QualityGraded:
    outcome: QualityOutcome
    progress: Progress


@dataclass(frozen=True)
class Finished:
    """The last event: the whole result (``interrupted`` when ``cancel()`` cut it short)."""

    result: BenchResult


BenchEvent = Planned | Loading | Loaded | Measured | QualityGraded | Finished


def interleaved_order(profiles: Sequence[str], rounds: int) -> list[tuple[int, str]]:
    """(round, profile) loads in order: A B A B ... for ``rounds`` rounds."""
    return [(r, name) for r in range(rounds) for name in profiles]


def sample_from_end(profile: str, prompt: BenchPrompt, round_: int, end: StreamEnd) -> Sample:
    """A ``Sample`` of one request's ``StreamEnd`` (zeros where the server sent no timings)."""
    t = end.timings
    return Sample(
        profile=profile,
        category=prompt.category,
        prompt_id=prompt.id,
        round=round_,
        status=end.status,
        prompt_n=t.prompt_n if t else 0,
        prompt_ms=t.prompt_ms if t else 0.0,
        prompt_tokens_per_s=t.prompt_per_second if t else 0.0,
        predicted_n=t.predicted_n if t else 0,
        predicted_ms=t.predicted_ms if t else 0.0,
        gen_tokens_per_s=t.predicted_per_second if t else 0.0,
        ttft_s=end.ttft_s,
        finish_reason=end.finish_reason,
    )


class BenchRun:
    """One benchmark: iterate ``events()`` once; ``result()`` at any time after it started."""

    def __init__(
        self,
        profiles: Sequence[Profile],
        prompts: Sequence[BenchPrompt],
        settings: Settings,
        backend: Backend,
        *,
        machine: Machine | None = None,
        quality_tasks: Sequence[QualityTask] = TASKS,
        quality_timeout_s: float = 10.0,
    ) -> None:
        self.profiles = tuple(profiles)
        self.prompts = tuple(prompts)
        self.settings = settings
        self.backend = backend
        self.machine = machine
        self.quality_tasks = tuple(quality_tasks) if settings.quality else ()
        self.quality_timeout_s = quality_timeout_s
        self.samples: list[Sample] = []
        self.quality: list[QualityOutcome] = []
        self.infos: dict[str, BenchProfile] = {}
        self.load_times: dict[str, list[float]] = {p.name: [] for p in self.profiles}
        self.started_at = time.time()
        self._cancelled = False
        self._finished = False
        self._t0 = 0.0
        self._done = 0

    @property
    def total_requests(self) -> int:
        per_round = len(self.profiles) * len(self.prompts)
        return self.settings.runs * per_round + len(self.profiles) * len(self.quality_tasks)

    def cancel(self) -> None:
        """Stop after the request in flight; the iteration then ends with ``Finished``."""
        self._cancelled = True

    def result(self) -> BenchResult:
        """Everything finished so far (``interrupted`` unless the whole plan ran)."""
        infos = tuple(
            replace(
                self.infos.get(p.name)
                or BenchProfile(p.name, str(p.model), None, None, None, None),
                load_times_s=tuple(self.load_times[p.name]),
            )
            for p in self.profiles
        )
        return BenchResult(
            started_at=self.started_at,
            finished_at=time.time(),
            interrupted=not self._finished,
            machine=self.machine or probe_machine(self.backend.version),
            settings=self.settings,
            profiles=infos,
            samples=tuple(self.samples),
            quality=tuple(self.quality),
        )

    def _progress(self) -> Progress:
        self._done += 1
        elapsed = time.monotonic() - self._t0
        left = self.total_requests - self._done
        eta = elapsed / self._done * left if self._done else None
        return Progress(self._done, self.total_requests, elapsed, eta)

    async def events(self) -> AsyncGenerator[BenchEvent, None]:
        """Run the plan; yields progress events, ending with ``Finished`` (unless the iterating
        task is cancelled: then the server is stopped and ``CancelledError`` propagates)."""
        self._t0 = time.monotonic()
        self.started_at = time.time()
        try:
            for profile in self.profiles:
                argv = await asyncio.to_thread(self.backend.argv, profile)
                self.infos[profile.name] = bench_profile(profile, argv, has_gpu=False)
            if self.machine is None:
                self.machine = await asyncio.to_thread(probe_machine, self.backend.version)
            has_gpu = self.machine.vram_total_bytes is not None
            if has_gpu:
                for profile in self.profiles:
                    argv = list(self.infos[profile.name].argv)
                    self.infos[profile.name] = bench_profile(profile, argv, has_gpu=True)
            order = interleaved_order([p.name for p in self.profiles], self.settings.runs)
            yield Planned(tuple(order), self.total_requests, self.machine)
            by_name = {p.name: p for p in self.profiles}
            for round_, name in order:
                if self._cancelled:
                    break
                yield Loading(name, round_)
                load_time = await self.backend.load(by_name[name])
                self.load_times[name].append(load_time)
                yield Loaded(name, round_, load_time)
                await self._ask(WARMUP_PROMPT, WARMUP_MAX_TOKENS, ignore_eos=False)
                for prompt in self.prompts:
                    if self._cancelled:
                        break
                    end = await self._ask(
                        prompt.text, self.settings.max_tokens, ignore_eos=self.settings.fixed_length
                    )
                    sample = sample_from_end(name, prompt, round_, end)
                    self.samples.append(sample)
                    yield Measured(sample, self._progress())
                if round_ == 0:
                    for task in self.quality_tasks:
                        if self._cancelled:
                            break
                        outcome = await self._quality(name, task)
                        self.quality.append(outcome)
                        yield QualityGraded(outcome, self._progress())
            else:
                self._finished = not self._cancelled
        finally:
            await self.backend.unload()
        yield Finished(self.result())

    async def _ask(self, text: str, max_tokens: int, *, ignore_eos: bool) -> StreamEnd:
        return await self.backend.complete(
            text,
            max_tokens=max_tokens,
            ignore_eos=ignore_eos,
            seed=self.settings.seed,
            temperature=self.settings.temperature,
        )

    async def _quality(self, profile: str, task: QualityTask) -> QualityOutcome:
        end = await self._ask(task.prompt, QUALITY_MAX_TOKENS, ignore_eos=False)
        if end.status != "done":
            reason = f"request failed: {end.status} {end.message}".strip()
            return QualityOutcome(profile, task.id, False, reason)
        passed, reason, tail = await asyncio.to_thread(
            grade, task, end.text, timeout_s=self.quality_timeout_s
        )
        return QualityOutcome(profile, task.id, passed, reason, tail)
