"""Shared helpers for the bench tests (no tests here): a scripted backend and ready-made results."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from coder_tui.core.bench.types import (
    BenchProfile,
    BenchResult,
    Machine,
    QualityOutcome,
    Sample,
    Settings,
)
from coder_tui.core.chat.events import StreamEnd, Timings
from coder_tui.core.config.loader import Profile

MACHINE = Machine(
    gpu="no NVIDIA GPU",
    gpu_driver=None,
    vram_total_bytes=None,
    cpu_model="Test CPU",
    cpu_cores=4,
    cpu_threads=8,
    ram_total_bytes=16 << 30,
    os="Linux-test",
    llama_server_version="b9999",
    coder_tui_version="0.1.0",
)


def profile(name: str) -> Profile:
    return Profile(name=name, model=Path(f"/nonexistent/{name}.gguf"), n_gpu_layers=42)


class FakeBackend:
    """Speeds per profile name; records every call. ``reply`` decides the text of a request."""

    def __init__(
        self,
        speeds: dict[str, float],
        *,
        delay_s: float = 0.0,
        reply: Callable[[str], str] = lambda prompt: "hello",
        on_complete: Callable[[int], None] | None = None,
    ) -> None:
        self.speeds = speeds
        self.delay_s = delay_s
        self.reply = reply
        self.on_complete = on_complete
        self.version: str | None = "b9999"
        self.calls: list[tuple[str, ...]] = []
        self.requests: list[dict[str, object]] = []
        self.loaded: str | None = None
        self.unloads = 0
        self._n = 0

    def argv(self, profile: Profile) -> list[str]:
        return ["llama-server", "-m", str(profile.model), "-ngl", "42"]

    async def load(self, profile: Profile) -> float:
        self.calls.append(("load", profile.name))
        self.loaded = profile.name
        return 1.0 + 0.01 * len(self.calls)

    async def complete(
        self, prompt: str, *, max_tokens: int, ignore_eos: bool, seed: int, temperature: float
    ) -> StreamEnd:
        self.calls.append(("complete", str(self.loaded), prompt[:20]))
        self.requests.append(
            {
                "prompt": prompt,
                "max_tokens": max_tokens,
                "ignore_eos": ignore_eos,
                "seed": seed,
                "temperature": temperature,
            }
        )
        self._n += 1
        if self.on_complete is not None:
            self.on_complete(self._n)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        assert self.loaded is not None
        speed = self.speeds[self.loaded] * (1 + 0.01 * (self._n % 3))
        n = max_tokens
        timings = Timings(20, 10.0, 2000.0, n, n / speed * 1000, speed, 0)
        return StreamEnd(
            status="done",
            ttft_s=0.05,
            timings=timings,
            finish_reason="length",
            text=self.reply(prompt),
        )

    async def unload(self) -> None:
        self.calls.append(("unload",))
        self.unloads += 1
        self.loaded = None


def sample(profile: str, category: str, speed: float, round_: int = 0) -> Sample:
    return Sample(
        profile=profile,
        category=category,
        prompt_id=f"{category}/x",
        round=round_,
        status="done",
        prompt_n=20,
        prompt_ms=10.0,
        prompt_tokens_per_s=2000.0,
        predicted_n=64,
        predicted_ms=64 / speed * 1000,
        gen_tokens_per_s=speed,
        ttft_s=0.05,
        finish_reason="length",
    )


def two_profile_result(a_speeds: list[float], b_speeds: list[float]) -> BenchResult:
    """A two-profile run over coding and writing with the given generation speeds."""
    samples = []
    for i, (sa, sb) in enumerate(zip(a_speeds, b_speeds, strict=True)):
        cat = "coding" if i % 2 == 0 else "writing"
        samples += [sample("iq2_xxs", cat, sa, i // 2), sample("iq3_xxs", cat, sb, i // 2)]
    infos = (
        BenchProfile(
            "iq2_xxs", "/m/iq2.gguf", 26_000_000_000, 48, 42, 10, ("llama-server",), (7.0, 7.2)
        ),
        BenchProfile(
            "iq3_xxs", "/m/iq3.gguf", 33_000_000_000, 48, 34, 18, ("llama-server",), (12.0, 12.1)
        ),
    )
    return BenchResult(
        started_at=1_700_000_000.0,
        finished_at=1_700_000_100.0,
        interrupted=False,
        machine=MACHINE,
        settings=Settings(
            runs=2,
            categories=("coding", "writing"),
            prompt_ids=("coding/x", "writing/x"),
            max_tokens=64,
            fixed_length=True,
            quality=True,
        ),
        profiles=infos,
        samples=tuple(samples),
        quality=(
            QualityOutcome("iq2_xxs", "roman", True, "passed"),
            QualityOutcome("iq3_xxs", "roman", False, "failed", "AssertionError"),
        ),
    )
