"""A quiet reply: asked for whole (``stream: false``), its progress read from ``/slots`` meanwhile.

Why: a streamed reply makes llama-server wake its HTTP thread for every token (to parse the reply
so far and send one chunk). With the server's threads on every core, that wake stalls the compute
threads at their barrier: 6-8 % of the decode speed at 330 tokens/s on 16 cores, however rarely
the client reads (``benchmarks/observer.py``, arm e). A reply asked for whole costs one wake; its
progress comes from the ``/slots`` reads the metrics sampler makes anyway, or a poll of its own
every 2 s when no sampler offers them. What the user sees meanwhile is the token count
(``DecodeProgress``), and the text when the reply is done. ``core/chat/reply_mode.py`` decides
when a reply is quiet; the connection and what both transports share are
``core/chat/connection.py``'s.

Owns the request, the ``/slots`` polls (every ``read_gap_s``; the newest task among the processing
slots is taken as this one), the progress an owner ``offer``s from the metrics sampler's own
``/slots`` reads (while offers come, the reply does not poll: one request and one wake-up fewer
per tick), the stall watchdog (no progress in ``/slots`` for ``stall_timeout_s``;
none while ``/slots`` is off), cancelling and turning the answer into the events of a stream, so a
caller iterates a ``QuietReply`` exactly as a ``ChatStream``. Time to first token is estimated from
the server's timings (prompt time plus one token's time), since no token arrives on its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from coder_tui.core.chat.connection import (
    CHAT_PATH,
    ChatConnection,
    ReplyEvents,
    end_for_failure,
    still_generating,
)
from coder_tui.core.chat.events import (
    ChatEvent,
    DecodeProgress,
    StreamTally,
    http_error_text,
)
from coder_tui.core.metrics.server_payloads import parse_slots
from coder_tui.core.metrics.types import SlotSample


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes


@dataclass(frozen=True)
class _Failed:
    exc: Exception


@dataclass(frozen=True)
class _Offered:
    event: DecodeProgress | None
    """What the offer brings to the stream (decided when offered, see ``QuietReply.offer``)."""


def slot_progress(slots: Sequence[SlotSample]) -> tuple[int, int] | None:
    """(prompt tokens processed, tokens decoded) of the newest task among the processing slots of
    a parsed ``/slots`` answer (``parse_slots``, as the metrics sampler reads it too); ``None``
    when none is processing."""
    best: tuple[int, int, int] | None = None
    for slot in slots:
        if not slot.is_processing or slot.task_id is None:
            continue
        if best is None or slot.task_id > best[0]:
            best = (slot.task_id, slot.prompt_tokens_processed or 0, slot.tokens_decoded or 0)
    return None if best is None else (best[1], best[2])


POLL_S = 2.0
"""How often ``/slots`` is read for the token count: as often as the metrics come while no core is
idle, so the server is asked no more than it already is."""
OFFER_GRACE = 1.5
"""Offers count as coming while the last one is less than this many poll intervals old (the
sampler's ticks jitter around the same 2 s)."""


class QuietReply(ReplyEvents):
    """One reply asked for whole: an async iterator of ``ChatEvent`` ending with one ``StreamEnd``.

    ``DecodeProgress`` events come while the server generates (when ``/slots`` answers), then the
    reply's ``Delta`` events, ``Finish``, ``Usage`` and ``Timings`` at once. ``cancel()`` ends it
    with ``StreamEnd(status="cancelled")`` and no text (none has come). ``read_gap_s`` is the poll
    interval and may be changed at any time. ``offer`` hands in progress read elsewhere; no poll
    is made within ``OFFER_GRACE`` x ``read_gap_s`` of an offer."""

    def __init__(self, client: ChatConnection, body: dict[str, Any]) -> None:
        super().__init__(client, body)
        self.read_gap_s = POLL_S
        self._offered_at = -float("inf")
        self._started: float | None = None
        """When the iteration began (the request went out); offers before it bring nothing."""
        self._seen: tuple[int, int] | None = None
        self._moved = 0.0
        """When ``_seen`` last changed (the stall watchdog's clock)."""
        self.polls = 0
        """``/slots`` requests this reply made itself (tests read it)."""

    def offer(self, progress: tuple[int, int] | None) -> DecodeProgress | None:
        """Progress the owner read from ``/slots`` (the metrics sampler's); ``None``: no slot is
        processing in that answer. Call from the event loop's thread.

        Returns the ``DecodeProgress`` the stream will yield for it (the same object), or None
        when it brings nothing new: an owner can show it at once, in the same screen update as
        the rest of the sampler's numbers, and skip it when the stream yields it."""
        now = time.monotonic()
        self._offered_at = now
        event = self._advance(progress, now)
        self._queue.put_nowait(_Offered(event))
        return event

    def _advance(self, progress: tuple[int, int] | None, now: float) -> DecodeProgress | None:
        """Take a new reading of (prompt tokens, tokens decoded); the token count to show when
        it moved and decoding has begun."""
        if progress is None or progress == self._seen or self._started is None:
            return None
        self._seen, self._moved = progress, now
        return DecodeProgress(progress[1], now - self._started) if progress[1] else None

    async def _post(self) -> None:
        try:
            resp = await self._client.http.post(CHAT_PATH, json=self._body)
            self._queue.put_nowait(_Answer(resp.status_code, resp.content))
        except Exception as exc:  # every failure becomes a StreamEnd, never an exception
            self._queue.put_nowait(_Failed(exc))

    def _fed(self) -> bool:
        return time.monotonic() - self._offered_at < OFFER_GRACE * self.read_gap_s

    async def _progress(self) -> tuple[int, int] | None:
        self.polls += 1
        try:
            resp = await self._client.http.get("/slots", timeout=httpx.Timeout(5.0))
            return slot_progress(parse_slots(resp.json())) if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    async def _run(self) -> AsyncGenerator[ChatEvent, None]:
        state = StreamTally(started=time.monotonic())
        self._started = self._moved = state.started
        post = asyncio.get_running_loop().create_task(self._post())
        try:
            while state.status is None:
                # Fed by offers: wait past the next one, so only the offer wakes this loop.
                wait_s = self.read_gap_s * (OFFER_GRACE if self._fed() else 1.0)
                try:
                    item = await asyncio.wait_for(self._queue.get(), wait_s)
                except TimeoutError:
                    item = None
                now = time.monotonic()
                if self._cancel_requested:
                    state.end("cancelled", "cancelled")
                elif item is None or isinstance(item, _Offered):
                    if isinstance(item, _Offered):
                        progress = item.event
                    elif self._fed():
                        progress = None  # offers come: the sampler asks /slots already
                    else:
                        progress = self._advance(await self._progress(), now)
                    if progress is not None:
                        yield progress
                    elif (
                        self._seen is not None and now - self._moved >= self._client.stall_timeout_s
                    ):
                        state.stalled = True
                        state.end(
                            "timed_out",
                            f"no progress on the server for {self._client.stall_timeout_s:g} s: "
                            "reply hung",
                        )
                elif isinstance(item, _Failed):
                    end_for_failure(item.exc, state, self._client)
                elif isinstance(item, _Answer):
                    for answered in self._on_answer(item, state, now):
                        yield answered
        except Exception as exc:
            state.end("bad_stream", f"internal error: {exc!r}")
        finally:
            post.cancel()
            await asyncio.wait([post])  # closes the request; never raises its error
        # llama-server looks for a closed connection of a whole-reply request once a second.
        still = await still_generating(self._client, state, wait_s=2.0)
        yield state.end_event(time.monotonic(), still)

    def _on_answer(self, answer: _Answer, state: StreamTally, now: float) -> list[ChatEvent]:
        state.http_status = answer.status
        if answer.status != 200:
            state.end("server_error", f"HTTP {answer.status}: {http_error_text(answer.body)}")
            return []
        events = state.take(answer.body, now, whole=True)
        if state.status is not None:
            return events
        timings = state.timings
        if state.first_token_at is not None and timings is not None and timings.predicted_n:
            one_token_ms = timings.predicted_ms / timings.predicted_n
            state.first_token_at = state.started + (timings.prompt_ms + one_token_ms) / 1000
        state.ended_early("the server's answer has no finish reason")
        return events
