"""Batch streamed text into a few widget updates a second.

One Markdown update per token costs 40-75 % of a core, and on a MoE box that core is computing
experts. ``Coalescer`` keeps deltas in a buffer and hands them to ``flush`` at most every
``interval_s``; the caller awaits ``add`` for each delta and ``close`` at the end.

- The first delta (and the first after a quiet spell longer than the interval) is flushed at once:
  time to first token is what a user feels most.
- Text that arrives inside the interval is flushed by a timer when the interval is up, so it is
  shown within ``interval_s`` even if no further token comes (a slow or pausing model). The timer
  is armed only while text is waiting, so an idle stream costs nothing.
- Flushes never overlap: one from the timer and one from ``add`` run one after the other.
- ``interval_s`` may be changed between calls (the chat pane slows down while no CPU core is
  idle); the next ``add`` uses the new value.

Knows nothing of Textual; the flush callable does the rendering.
"""

from __future__ import annotations

import asyncio
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
        self.interval_s = interval_s
        self._clock = clock
        self._pending: list[str] = []
        self._last = float("-inf")
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self.flushes = 0
        self.timer_flushes = 0
        """How many of ``flushes`` the timer made (text that no later token pushed out)."""

    async def add(self, text: str) -> None:
        self._raise_timer_error()
        if text:
            self._pending.append(text)
        if not self._pending:
            return
        wait = self._last + self.interval_s - self._clock()
        if wait <= 0 and not self._lock.locked():
            self._cancel_timer()
            await self._emit()
        else:
            self._arm(max(wait, 0.0))

    async def close(self) -> None:
        """Flush what is left; the timer is stopped. Raises an error a timer flush met."""
        self._cancel_timer()
        task, self._timer_task = self._timer_task, None
        if task is not None and not task.done():
            await asyncio.shield(task)
        self._raise_timer_error()
        if self._pending:
            await self._emit()

    def _arm(self, delay: float) -> None:
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(delay, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_task = asyncio.create_task(self._emit_from_timer())

    async def _emit_from_timer(self) -> None:
        try:
            if self._pending:
                self.timer_flushes += 1
                await self._emit()
        except Exception as error:  # re-raised by the next add or close, in the caller's task
            self._error = error

    def _raise_timer_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    async def _emit(self) -> None:
        async with self._lock:
            if not self._pending:
                return
            text = "".join(self._pending)
            self._pending.clear()
            self._last = self._clock()
            self.flushes += 1
            await self._flush(text)
