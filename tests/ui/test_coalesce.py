"""The coalescer's batching and its timer (no Textual: plain asyncio)."""

from __future__ import annotations

import asyncio
import time

import pytest

from coder_tui.core.chat.coalesce import Coalescer


class Sink:
    def __init__(self) -> None:
        self.got: list[tuple[float, str]] = []

    async def __call__(self, text: str) -> None:
        self.got.append((time.monotonic(), text))

    @property
    def texts(self) -> list[str]:
        return [t for _, t in self.got]


async def test_first_delta_is_flushed_at_once() -> None:
    sink = Sink()
    c = Coalescer(sink, interval_s=10)
    await c.add("a")
    assert sink.texts == ["a"]  # time to first token: no waiting
    await c.add("b")
    await c.add("c")
    assert sink.texts == ["a"]
    await c.close()
    assert sink.texts == ["a", "bc"] and c.flushes == 2


async def test_timer_shows_held_text_without_a_next_token() -> None:
    sink = Sink()
    c = Coalescer(sink, interval_s=0.05)
    await c.add("a")
    t0 = time.monotonic()
    await c.add("b")  # inside the interval: held, the timer is armed
    assert sink.texts == ["a"]
    await asyncio.sleep(0.2)  # no more tokens: the model paused
    assert sink.texts == ["a", "b"] and c.timer_flushes == 1
    assert sink.got[1][0] - t0 < 0.15
    await c.close()
    assert sink.texts == ["a", "b"]


async def test_at_most_one_flush_per_interval() -> None:
    sink = Sink()
    c = Coalescer(sink, interval_s=0.05)
    start = time.monotonic()
    while time.monotonic() - start < 0.5:
        await c.add("x")
        await asyncio.sleep(0.002)
    await c.close()
    assert "".join(sink.texts) == "x" * len("".join(sink.texts))
    gaps = [b - a for (a, _), (b, _) in zip(sink.got, sink.got[1:-1], strict=False)]
    assert all(g >= 0.045 for g in gaps)
    assert 5 <= c.flushes <= 14


async def test_no_text_is_lost_or_reordered() -> None:
    sink = Sink()
    c = Coalescer(sink, interval_s=0.01)
    parts = [f"{i} " for i in range(300)]
    for i, part in enumerate(parts):
        await c.add(part)
        if i % 7 == 0:
            await asyncio.sleep(0.004)
    await c.close()
    assert "".join(sink.texts) == "".join(parts)


async def test_slow_flushes_never_overlap() -> None:
    running = 0
    seen: list[str] = []

    async def slow(text: str) -> None:
        nonlocal running
        running += 1
        assert running == 1
        await asyncio.sleep(0.03)
        seen.append(text)
        running -= 1

    c = Coalescer(slow, interval_s=0.01)
    for i in range(40):
        await c.add(str(i % 10))
        await asyncio.sleep(0.003)
    await c.close()
    assert "".join(seen) == "".join(str(i % 10) for i in range(40))


async def test_idle_stream_arms_no_timer() -> None:
    sink = Sink()
    c = Coalescer(sink, interval_s=0.01)
    await c.add("a")
    await c.add("")
    await asyncio.sleep(0.05)
    assert sink.texts == ["a"] and c.timer_flushes == 0
    await c.close()


async def test_close_cancels_the_timer_and_flushes_the_rest() -> None:
    sink = Sink()
    c = Coalescer(sink, interval_s=0.2)
    await c.add("a")
    await c.add("b")
    await c.close()
    assert sink.texts == ["a", "b"]
    await asyncio.sleep(0.3)
    assert sink.texts == ["a", "b"] and c.timer_flushes == 0


async def test_an_error_in_a_timer_flush_reaches_the_caller() -> None:
    calls = 0

    async def failing(text: str) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("render failed")

    c = Coalescer(failing, interval_s=0.02)
    await c.add("a")
    await c.add("b")
    await asyncio.sleep(0.1)
    with pytest.raises(RuntimeError, match="render failed"):
        await c.add("c")
