"""One trial of the autotuner: start llama-server with a candidate, measure it, stop it.

Owns ``candidate_profile`` (the profile a candidate runs as), ``measure_trial`` (a fixed-length
generation, repeated, and one long prompt through ``chat/client.py``; the server's VRAM sampled
through NVML; the trial's status from how the stream ended and from the server's own log, so that
an out-of-memory crash is told from other failures), the long prompt's text (``filler_text``,
sized with the server's ``/tokenize``) and the VRAM watcher. The sweep around it (order, early
stop, budget, winner) is ``sweep.py``'s; the values both share are ``types.py``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Any

from coder_tui.core.config import cmdline
from coder_tui.core.config.loader import Config, Profile
from coder_tui.core.tune.types import Candidate, Trial, TrialStatus, TuneSettings, is_oom

_PLACEMENT_KEYS = ("n_gpu_layers", "n_cpu_moe", "cpu_moe")
"""The flags a candidate replaces in ``extra_args`` (a later one there would win)."""


_TB = ("-tb", "--threads-batch")


def _without_tb(args: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
        elif a in _TB:
            skip = True
        elif not a.startswith("--threads-batch="):
            out.append(a)
    return tuple(out)


def candidate_profile(profile: Profile, cand: Candidate) -> Profile:
    """``profile`` with the candidate's flags (the flags they replace removed from ``extra_args``)."""
    replaced = (
        *_PLACEMENT_KEYS,
        *(("ubatch",) if cand.ubatch is not None else ()),
        *(("threads",) if cand.threads is not None else ()),
        *(("override_tensor",) if cand.cpu_parts else ()),
        *(("mmap",) if cand.mmap is not None else ()),
    )
    extra = cmdline.strip(profile.extra_args, replaced)
    if cand.threads_batch is not None:
        extra = (*_without_tb(extra), "-tb", str(cand.threads_batch))
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
        override_tensor=cand.overrides() or profile.override_tensor,
        mmap=profile.mmap if cand.mmap is None else cand.mmap,
        extra_args=(*extra, *cand.extra),
    )


_FILLER = (
    "expert layer cache batch thread memory speed quant weight tensor load save read write "
    "open close start stop check result output input model token value data index count"
)


def filler_text(n_words: int, seed: int = 0) -> str:
    """Deterministic prose-like words for the long prompt (no repeats a cache could exploit)."""
    words = _FILLER.split(" ")
    return " ".join(words[(i * 7 + seed + i // len(words)) % len(words)] for i in range(n_words))


async def _prompt_text(url: str, target_tokens: int) -> str:
    """Text of about ``target_tokens`` tokens, sized with the server's ``/tokenize``."""
    import httpx

    from coder_tui.core.connections import server_http

    n_words = max(target_tokens // 2, 1)
    text = filler_text(n_words)
    async with server_http(base_url=url, timeout=30.0) as http:
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
    from coder_tui.core.chat.client import ChatClient, StreamEnd
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
        generation_samples=tuple(t.predicted_per_second for t in gens),
    )
