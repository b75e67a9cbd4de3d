"""Batch streamed text into a few widget updates a second.

One Markdown update per token costs 40-75 % of a core, and on a MoE box that core is computing
experts. ``Coalescer`` keeps deltas in a buffer and flushes at most every ``interval_s``; the caller
awaits ``add`` for each delta and ``close`` at the end. Flushing happens on the next delta after
the interval (no timer), so an idle stream costs nothing.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable


class Coalescer:
    """Collects text and hands it to ``flush`` at most once per ``interval_s``."""

    def __init__(
        self,
        flush: Callable[[str], Awaitable[None]],
        interval_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._flush = flush
        self._interval_s = interval_s
        self._clock = clock
        self._pending: list[str] = []
        self._last = float("-inf")
        self.flushes = 0

    async def add(self, text: str) -> None:
        if text:
            self._pending.append(text)
        if self._pending and self._clock() - self._last >= self._interval_s:
            await self._emit()

    async def close(self) -> None:
        if self._pending:
            await self._emit()

    async def _emit(self) -> None:
        text = "".join(self._pending)
        self._pending.clear()
        self._last = self._clock()
        self.flushes += 1
        await self._flush(text)
