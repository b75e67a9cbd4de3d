"""llama-server's own view: ``/metrics`` counters as speeds, ``/slots`` as phases and KV fill.

Owns ``ServerProbe`` (both endpoints at most once per
``min_interval_s``: llama-server answers them from its decode loop). Nothing here raises: an
endpoint that is off (501, started without ``--metrics``/``--slots``) gives ``None`` fields, no
answer is ``ServerPhase.DOWN``, 503 is ``LOADING``. Scheduling is ``bus``'s.

Transport: a plain ``http://`` server without a caller's client is polled over one connection per
poll, closed after it (``poll_connection.PollConnection``: an idle kept-alive connection makes
llama-server wake 100 times a second), on a worker thread, ``/slots`` first. ``/metrics`` is
skipped, and asked again at least every ``METRICS_MAX_AGE_S``, when ``/slots`` shows that its
counters cannot have moved, or only ``n_decode_total``: every slot idle and the ``/slots`` answer
byte for byte the last one (a request that started and ended between two polls leaves its slot
with a new ``id_task``), or the same requests generating as at the last poll (llama-server adds a
request's prompt and generated tokens to its counters when the prompt, and the request, end; the
live speed is the slots' own progress). While a model has every core, each request is a wake-up
of the server's threads. A
caller's ``httpx.AsyncClient`` (fleet remotes, tests) or an ``https://`` URL use httpx, both
endpoints every poll. The sampler sees every client's traffic: both endpoints are server-wide.

The payloads (``/metrics`` text, ``/slots`` JSON) and what this llama.cpp reports in them are
``server_payloads``'s.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import httpx

from coder_tui.core.connections import server_http
from coder_tui.core.metrics.poll_connection import PollConnection, split_http_url
from coder_tui.core.metrics.server_payloads import (
    COUNTERS,
    as_int,
    parse_prometheus,
    parse_slots,
    server_phase,
)
from coder_tui.core.metrics.types import ServerPhase, ServerSample, SlotSample

METRICS_MAX_AGE_S = 10.0
"""While ``/slots`` shows nothing happening, ``/metrics`` is still asked this often (seconds)."""

_Answer = tuple[int, bytes] | None
"""(status, body) of one endpoint, or ``None``: no answer (refused, timed out, not HTTP)."""

HELD: _Answer = (0, b"")
"""``/metrics`` not asked while the same requests generate: its counters are held, not reread."""

MIN_BUSY_S = 0.0005
"""Busy time below which a counter delta gives no speed (llama-server times a one-token request
at about a microsecond, which read as a million tokens/s)."""


class ServerProbe:
    """Polls one llama-server; keeps the previous counters to turn them into speeds."""

    def __init__(
        self,
        base_url: str,
        *,
        client: httpx.AsyncClient | None = None,
        timeout_s: float = 2.0,
        min_interval_s: float = 1.0,
        api_key: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = client
        self._own_client = client is None
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._conn: PollConnection | None = None
        self.timeout_s = timeout_s
        self.min_interval_s = min_interval_s
        self._last: ServerSample | None = None
        self._last_t: float | None = None
        self._prev_counters: dict[str, float] | None = None
        self._prev_counters_t: float | None = None
        self._prev_t: float | None = None
        self._prev_slots: dict[int, tuple[int | None, int, bool]] = {}
        self._first_seen: dict[tuple[int, int | None], tuple[float, int]] = {}
        # For skipping /metrics: the last /slots body as parsed, the last /metrics answer and when.
        self._slots_seen: tuple[bytes, tuple[SlotSample, ...] | None] | None = None
        self._metrics_answer: _Answer = None
        self._metrics_t = -math.inf
        self.metrics_skipped = 0
        """Polls that reused the last ``/metrics`` answer (tests and benchmarks read it)."""

    def reset(self, base_url: str | None = None) -> None:
        """Forget the previous counters (a new server, maybe at a new address)."""
        if base_url is not None and base_url.rstrip("/") != self.base_url:
            self.base_url = base_url.rstrip("/")
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        self._last = self._last_t = self._prev_counters = self._prev_t = None
        self._prev_counters_t = None
        self._prev_slots = {}
        self._first_seen = {}  # a new server's task ids start again: no old request's start
        self._forget_answers()

    def _forget_answers(self) -> None:
        self._slots_seen, self._metrics_answer, self._metrics_t = None, None, -math.inf

    async def aclose(self) -> None:
        if self._conn is not None:
            self._conn.close()  # a poll still in flight on the worker thread closes it after
            self._conn = None
        if self._own_client and self._client is not None:
            await self._client.aclose()
        self._client = None

    async def _get(self, path: str) -> _Answer:
        if self._client is None:
            self._client = server_http(headers=self._headers)
        try:
            resp = await self._client.get(self.base_url + path, timeout=self.timeout_s)
        except httpx.HTTPError:
            return None
        return resp.status_code, resp.content

    def _poll_connection(self) -> PollConnection | None:
        """The poll connection for a plain ``http://`` server polled without a caller's client."""
        if self._conn is None and self._own_client:
            where = split_http_url(self.base_url)
            if where is not None:
                host, port, prefix = where
                self._conn = PollConnection(
                    host, port, timeout_s=self.timeout_s, prefix=prefix, headers=self._headers
                )
        return self._conn

    def _fetch_blocking(self, conn: PollConnection) -> tuple[_Answer, _Answer, float]:
        """``/slots``, then ``/metrics`` unless nothing can have moved it (worker thread); the time
        is the ``/slots`` answer's (live speeds come from it; ``/metrics`` waits a decode step)."""
        try:
            return self._fetch_both(conn)
        finally:
            conn.release()  # no idle connection for llama-server to watch until the next poll

    def _fetch_both(self, conn: PollConnection) -> tuple[_Answer, _Answer, float]:
        slots = conn.get("/slots")
        now, seen = time.monotonic(), self._slots_seen
        if slots is None:  # unreachable or stalled: asking /metrics too would only wait again
            return None, None, now
        fresh = self._metrics_answer is not None and now - self._metrics_t < METRICS_MAX_AGE_S
        if slots[0] == 200 and fresh and seen is not None and seen[1] is not None:
            if seen[0] == slots[1] and not any(s.is_processing for s in seen[1]):
                self.metrics_skipped += 1
                return self._metrics_answer, slots, now  # idle, nothing ran: the same counters
            if _same_generation(seen[1], self._parsed_slots(slots[1])):
                self.metrics_skipped += 1
                return HELD, slots, now
        metrics = conn.get("/metrics")
        self._metrics_answer, self._metrics_t = metrics, now
        return metrics, slots, now

    def _parsed_slots(self, body: bytes) -> tuple[SlotSample, ...] | None:
        """``/slots`` parsed, once per distinct answer (kept for ``_compose``)."""
        seen = self._slots_seen
        if seen is not None and seen[0] == body:
            return seen[1]
        try:
            slots = parse_slots(json.loads(body))
        except ValueError:
            slots = None
        self._slots_seen = (body, slots)
        return slots

    @property
    def blocking(self) -> bool:
        """Polled over a ``PollConnection``: ``sample_blocking`` works (from one thread at a time)."""
        return self._poll_connection() is not None

    def _recent(self, now: float) -> ServerSample | None:
        last, last_t = self._last, self._last_t
        # 10 % slack: a bus ticking at exactly min_interval_s jitters a little either side.
        if last is not None and last_t is not None and now - last_t < 0.9 * self.min_interval_s:
            return last
        return None

    def _finish(self, metrics: _Answer, slots: _Answer, at: float | None = None) -> ServerSample:
        now = time.monotonic() if at is None else at
        sample = self._compose(now, metrics, slots)
        self._last, self._last_t = sample, now
        return sample

    async def sample(self) -> ServerSample:
        """Poll ``/metrics`` and ``/slots`` together; too soon after the last poll, return that sample."""
        recent = self._recent(time.monotonic())
        if recent is not None:
            return recent
        if self._poll_connection() is not None:
            return await asyncio.to_thread(self.sample_blocking)
        metrics, slots = await asyncio.gather(self._get("/metrics"), self._get("/slots"))
        return self._finish(metrics, slots)

    def sample_blocking(self) -> ServerSample:
        """``sample`` on the calling thread (the bus's worker thread) for a ``blocking`` probe."""
        recent = self._recent(time.monotonic())
        if recent is not None:
            return recent
        conn = self._poll_connection()
        if conn is None:
            return ServerSample(
                phase=ServerPhase.DOWN, error="https or a caller's client: use sample"
            )
        metrics, slots, at = self._fetch_blocking(conn)
        return self._finish(metrics, slots, at)

    def _compose(self, now: float, m: _Answer, s: _Answer) -> ServerSample:
        if m is None and s is None:
            self._prev_counters, self._prev_slots, self._prev_t = None, {}, None
            self._forget_answers()
            return ServerSample(phase=ServerPhase.DOWN, error="no answer")
        if (m is not None and m[0] == 503) or (s is not None and s[0] == 503):
            self._forget_answers()
            return ServerSample(phase=ServerPhase.LOADING)
        metrics = None
        if m is not None and m is not HELD and m[0] == 200:
            metrics = parse_prometheus(m[1].decode("utf-8", "replace"))
        slots = self._parsed_slots(s[1]) if s is not None and s[0] == 200 else None
        return self.compute(now, metrics, slots, counters_held=m is HELD)

    def compute(
        self,
        now: float,
        metrics: Mapping[str, float] | None,
        slots: tuple[SlotSample, ...] | None,
        *,
        counters_held: bool = False,
    ) -> ServerSample:
        """The sample for parsed payloads taken at monotonic time ``now`` (tests call this).
        ``counters_held``: ``/metrics`` was not asked (the same requests generating); its
        counters keep their last values and the next answer's deltas span the gap."""
        if counters_held and self._last is not None and self._prev_counters is not None:
            return self._held(now, slots, self._last)
        counters = {k: metrics[k] for k in COUNTERS if k in metrics} if metrics else None
        prev, prev_ct = self._prev_counters, self._prev_counters_t
        prev_t, self._prev_t, self._prev_counters_t = self._prev_t, now, now
        dt = now - prev_t if prev_t is not None else None
        dt_counters = now - prev_ct if prev_ct is not None else None
        d: dict[str, float] = {}
        restarted = (
            counters is not None
            and prev is not None
            and any(counters[k] < prev.get(k, 0.0) for k in counters)
        )
        if counters is not None and prev is not None and dt_counters and not restarted:
            d = {k: counters[k] - prev.get(k, 0.0) for k in counters}
        # First sight of a server that already served (a request that finished before the first
        # poll): its busy speed is still known from the totals, which then span every request.
        first = counters if counters is not None and (prev is None or restarted) else None
        self._prev_counters = counters

        def rate(key: str) -> float | None:
            return d[key] / dt_counters if key in d and dt_counters else None

        def busy(tokens: str, seconds: str) -> float | None:
            src = d or first or {}
            # A one-token request is timed at about a microsecond: no meaningful speed.
            if src.get(seconds, 0) < MIN_BUSY_S or src.get(tokens, 0) < 2:
                return None
            return src[tokens] / src[seconds]

        gen_rate = self._live_generation(slots, d.get("tokens_predicted_total"), dt)
        request_rate = self._request_rate(slots, now)
        if gen_rate is None and slots is None:
            gen_rate = rate("tokens_predicted_total")
        phase = server_phase(slots, metrics if counters else None, d.get("prompt_tokens_total"))
        metrics = metrics or {}
        return ServerSample(
            phase=phase,
            interval_s=dt,
            metrics_available=counters is not None,
            slots_available=slots is not None,
            prompt_tokens_per_s=rate("prompt_tokens_total"),
            prompt_tokens_per_busy_s=busy("prompt_tokens_total", "prompt_seconds_total"),
            generation_tokens_per_s=gen_rate,
            generation_tokens_per_request_s=request_rate,
            generation_tokens_per_busy_s=busy(
                "tokens_predicted_total", "tokens_predicted_seconds_total"
            ),
            prompt_tokens_total=as_int(counters.get("prompt_tokens_total")) if counters else None,
            generation_tokens_total=(
                as_int(counters.get("tokens_predicted_total")) if counters else None
            ),
            decode_calls_per_s=rate("n_decode_total"),
            requests_processing=as_int(metrics.get("requests_processing")),
            requests_deferred=as_int(metrics.get("requests_deferred")),
            counters_restarted=restarted,
            **_slot_totals(slots),
        )

    def _held(
        self, now: float, slots: tuple[SlotSample, ...] | None, last: ServerSample
    ) -> ServerSample:
        """A poll without ``/metrics`` while the same requests generate: live speeds from the
        slots; no prompt ended (0 prompt tokens/s, no busy speeds), no request ended; the
        totals, the decode-call rate and the request counts as last read."""
        prev_t, self._prev_t = self._prev_t, now
        dt = now - prev_t if prev_t is not None else None
        return replace(
            last,
            phase=server_phase(slots, None, None),
            interval_s=dt,
            slots_available=slots is not None,
            prompt_tokens_per_s=0.0,
            prompt_tokens_per_busy_s=None,
            generation_tokens_per_s=self._live_generation(slots, None, dt),
            generation_tokens_per_request_s=self._request_rate(slots, now),
            generation_tokens_per_busy_s=None,
            counters_restarted=False,
            **_slot_totals(slots),
        )

    def _request_rate(self, slots: tuple[SlotSample, ...] | None, now: float) -> float | None:
        """Speed of the longest-running generating request since it was first seen."""
        firsts = self._first_seen
        seen: dict[tuple[int, int | None], tuple[float, int]] = {}
        best: float | None = None
        for s in slots or ():
            if not s.is_processing or not s.tokens_decoded:
                continue
            key = (s.id, s.task_id)
            t0, n0 = firsts.get(key, (now, s.tokens_decoded))
            seen[key] = (t0, n0)
            if now > t0 and s.tokens_decoded > n0:
                rate = (s.tokens_decoded - n0) / (now - t0)
                best = rate if best is None else max(best, rate)
        self._first_seen = seen
        return best

    def _live_generation(
        self, slots: tuple[SlotSample, ...] | None, ended_tokens: float | None, dt: float | None
    ) -> float | None:
        """Tokens generated per wall second: busy slots' progress plus requests that ended."""
        if slots is None:
            self._prev_slots = {}
            return None
        prev, self._prev_slots = (
            self._prev_slots,
            {s.id: (s.task_id, s.tokens_decoded or 0, s.is_processing) for s in slots},
        )
        if not dt or dt <= 0 or (not prev and any(s.is_processing for s in slots)):
            return None  # no baseline yet
        tokens = 0.0
        seen_of_ended = 0
        for s in slots:
            task, n_prev, was_busy = prev.get(s.id, (None, 0, False))
            same = was_busy and task == s.task_id
            if s.is_processing:
                tokens += max(0, (s.tokens_decoded or 0) - (n_prev if same else 0))
            if was_busy and not (same and s.is_processing):
                seen_of_ended += n_prev  # that request ended: its tail is in the counters
        if ended_tokens is not None:
            tokens += max(0.0, ended_tokens - seen_of_ended)
        return tokens / dt


def _same_generation(before: tuple[SlotSample, ...], now: tuple[SlotSample, ...] | None) -> bool:
    """The same requests generate now as at the last poll, and nothing else runs: no prompt and
    no request can have ended in between, so ``/metrics``'s token counters have not moved."""
    if now is None:
        return False

    def generating(slots: tuple[SlotSample, ...]) -> set[tuple[int, int | None]] | None:
        busy = [s for s in slots if s.is_processing]
        if any(s.phase is not ServerPhase.GENERATING for s in busy):
            return None
        return {(s.id, s.task_id) for s in busy}

    was, is_ = generating(before), generating(now)
    return bool(was) and was == is_


def _slot_totals(slots: tuple[SlotSample, ...] | None) -> dict[str, Any]:
    """``ServerSample``'s fields summed over the slots: busy slots, the slots, KV use."""
    used = [s.context_tokens for s in slots or () if s.context_tokens is not None]
    fills = [s.kv_fill_ratio for s in slots or () if s.kv_fill_ratio is not None]
    return {
        "busy_slots": sum(s.is_processing for s in slots) if slots is not None else None,
        "slots": slots or (),
        "kv_used_tokens": sum(used) if used else None,
        "kv_fill_ratio": max(fills) if fills else None,
    }
