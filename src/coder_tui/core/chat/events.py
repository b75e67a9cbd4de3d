"""The typed events a chat stream yields, and the parsing of one OpenAI-style chunk into them.

Owns the event values (frozen dataclasses), the tolerant reading of a decoded JSON chunk and of an
error body, the tally that becomes the ``StreamEnd`` (including whether a byte stream that stopped
without ``[DONE]`` still holds a whole reply), and the line that tells the user how a reply ended
(``reply_end_notice``). The HTTP side, timeouts and the other ways a stream ends live in
``core/chat/stream.py`` and ``core/chat/connection.py``; framing in ``core/chat/sse.py``.

All text in a ``Delta`` has been through ``sanitize()``: ESC, C0 (but newline and tab), DEL and C1
are gone. The sanitised text is what the UI shows and what ``core/store/`` stores; the raw text is
not kept anywhere (the stripped characters carry nothing a reader could want).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from coder_tui.core.sanitize import sanitize

EndStatus: TypeAlias = Literal[
    "done", "cancelled", "server_error", "connection_lost", "timed_out", "bad_stream"
]


@dataclass(frozen=True)
class Delta:
    """New reply text (``reasoning=True``: the server's separate ``reasoning_content``).

    ``t_s``: seconds from sending the request to the arrival of the bytes that carried it.
    """

    text: str
    reasoning: bool = False
    t_s: float = 0.0


@dataclass(frozen=True)
class PromptProgress:
    """llama-server's prompt-processing progress (sent while the prompt is read, before any token)."""

    total: int
    cache: int
    processed: int
    time_ms: float


@dataclass(frozen=True)
class DecodeProgress:
    """Tokens generated so far while a quiet reply (one shown whole at its end,
    ``core/chat/quiet_reply.py``) is generated; ``t_s`` as for ``Delta``."""

    n_decoded: int
    t_s: float


@dataclass(frozen=True)
class Timings:
    """llama-server's own measurement of the request; the speeds to show users come from here."""

    prompt_n: int
    prompt_ms: float
    prompt_per_second: float
    predicted_n: int
    predicted_ms: float
    predicted_per_second: float
    cache_n: int


@dataclass(frozen=True)
class Usage:
    """Token counts as the OpenAI ``usage`` object reports them."""

    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Finish:
    """The server's finish reason: ``stop``, ``length``, ``tool_calls``, ..."""

    reason: str


@dataclass(frozen=True)
class StreamEnd:
    """The last event of every stream, exactly once: how it ended and what it measured.

    ``status``: ``done`` (``[DONE]``, or the server closed after a finish reason), ``cancelled``
    (``ChatStream.cancel()``), ``server_error`` (HTTP error status, or an error object in the
    stream; ``message`` is the server's), ``connection_lost`` (cannot connect, or the connection
    closed or broke before the reply finished), ``timed_out`` (no connection within the connect
    timeout, or the stall watchdog: no byte at all for ``stall_timeout_s``), ``bad_stream`` (data
    that is not SSE / JSON, or an unexpected content type).

    Times are client-side and monotonic: ``started_at`` when the request was sent,
    ``first_token_at`` when the first ``Delta`` (reply or reasoning) arrived, ``ttft_s`` the
    difference, ``elapsed_s`` until the end. ``server_still_generating`` is filled after a cancel or
    a stall from ``/slots`` (``None``: not checked or not available). ``text`` and
    ``reasoning_text`` are everything the stream yielded, already sanitised.
    """

    status: EndStatus
    message: str = ""
    ttft_s: float | None = None
    elapsed_s: float = 0.0
    started_at: float = 0.0
    first_token_at: float | None = None
    finish_reason: str | None = None
    timings: Timings | None = None
    usage: Usage | None = None
    http_status: int | None = None
    server_still_generating: bool | None = None
    text: str = ""
    reasoning_text: str = ""


ChatEvent: TypeAlias = (
    Delta | PromptProgress | DecodeProgress | Timings | Usage | Finish | StreamEnd
)


class ChunkError(Exception):
    """A chunk that is not a JSON object, or one carrying an ``error`` (``server=True``)."""

    def __init__(self, message: str, *, server: bool) -> None:
        super().__init__(message)
        self.server = server


def _num(obj: Mapping[str, Any], key: str) -> float:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    value = float(value)
    return value if math.isfinite(value) else 0.0


def _int(obj: Mapping[str, Any], key: str) -> int:
    return int(_num(obj, key))


def error_message(error: object) -> str:
    """The human message of an OpenAI/llama-server ``error`` value (object or string)."""
    if isinstance(error, Mapping):
        msg = error.get("message")
        if isinstance(msg, str) and msg:
            return sanitize(msg)
        return sanitize(str(dict(error)))
    return sanitize(str(error))


def parse_chunk(chunk: object, t_s: float) -> list[ChatEvent]:
    """The events in one decoded ``chat.completion.chunk``. Unknown fields are ignored; an
    ``error`` field or a non-object raises ``ChunkError``."""
    if not isinstance(chunk, Mapping):
        raise ChunkError(f"stream chunk is not a JSON object: {str(chunk)[:80]!r}", server=False)
    if "error" in chunk:
        raise ChunkError(error_message(chunk["error"]), server=True)
    events: list[ChatEvent] = []
    progress = chunk.get("prompt_progress")
    if isinstance(progress, Mapping):
        events.append(
            PromptProgress(
                _int(progress, "total"),
                _int(progress, "cache"),
                _int(progress, "processed"),
                _num(progress, "time_ms"),
            )
        )
    choices = chunk.get("choices")
    for choice in choices if isinstance(choices, list) else ():
        if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
            continue  # n > 1 is not asked for; only the first choice is shown
        delta = choice.get("delta")
        if isinstance(delta, Mapping):
            reasoning = delta.get("reasoning_content")
            if isinstance(reasoning, str) and reasoning:
                text = sanitize(reasoning)
                if text:
                    events.append(Delta(text, True, t_s))
            content = delta.get("content")
            if isinstance(content, str) and content:
                text = sanitize(content)
                if text:
                    events.append(Delta(text, False, t_s))
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            events.append(Finish(sanitize(reason)))
    usage = chunk.get("usage")
    if isinstance(usage, Mapping):
        events.append(Usage(_int(usage, "prompt_tokens"), _int(usage, "completion_tokens")))
    timings = chunk.get("timings")
    if isinstance(timings, Mapping):
        events.append(
            Timings(
                prompt_n=_int(timings, "prompt_n"),
                prompt_ms=_num(timings, "prompt_ms"),
                prompt_per_second=_num(timings, "prompt_per_second"),
                predicted_n=_int(timings, "predicted_n"),
                predicted_ms=_num(timings, "predicted_ms"),
                predicted_per_second=_num(timings, "predicted_per_second"),
                cache_n=_int(timings, "cache_n"),
            )
        )
    return events


@dataclass
class StreamTally:
    """What a stream has yielded and how it ended so far; becomes the ``StreamEnd``."""

    started: float
    status: EndStatus | None = None
    message: str = ""
    http_status: int | None = None
    first_token_at: float | None = None
    finish_reason: str | None = None
    timings: Timings | None = None
    usage: Usage | None = None
    stalled: bool = False
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)

    def end(self, status: EndStatus, message: str = "") -> None:
        if self.status is None:
            self.status, self.message = status, message

    def record(self, event: ChatEvent, at: float) -> None:
        if isinstance(event, Delta):
            if self.first_token_at is None:
                self.first_token_at = at
            (self.reasoning if event.reasoning else self.text).append(event.text)
        elif isinstance(event, Finish):
            self.finish_reason = event.reason
        elif isinstance(event, Timings):
            self.timings = event
        elif isinstance(event, Usage):
            self.usage = event

    def take(self, data: str | bytes, at: float) -> list[ChatEvent]:
        """Parse one chunk's JSON arrived at monotonic ``at``, record its events and return
        them; bad data ends the tally instead."""
        try:
            parsed = parse_chunk(json.loads(data), at - self.started)
        except ValueError:
            self.end("bad_stream", f"the server sent data that is not JSON: {data[:80]!r}")
            return []
        except ChunkError as exc:
            self.end("server_error" if exc.server else "bad_stream", str(exc))
            return []
        for event in parsed:
            self.record(event, at)
        return parsed

    def ended_early(self, message: str) -> None:
        """The byte stream stopped without ``[DONE]``: a reply whose finish reason came is whole
        (only usage or timings may be missing), so it is ``done``; otherwise the reply is cut."""
        if self.finish_reason is not None:
            self.end("done")
        else:
            self.end("connection_lost", message)

    def end_event(self, now: float, still_generating: bool | None) -> StreamEnd:
        """The stream's ``StreamEnd`` at monotonic time ``now``."""
        first = self.first_token_at
        return StreamEnd(
            status=self.status or "bad_stream",
            message=self.message,
            ttft_s=None if first is None else first - self.started,
            elapsed_s=now - self.started,
            started_at=self.started,
            first_token_at=first,
            finish_reason=self.finish_reason,
            timings=self.timings,
            usage=self.usage,
            http_status=self.http_status,
            server_still_generating=still_generating,
            text="".join(self.text),
            reasoning_text="".join(self.reasoning),
        )


def http_error_text(body: bytes) -> str:
    """The message of an error body: the JSON ``error.message`` if there is one, else the text."""
    text = body.decode("utf-8", errors="replace")
    try:
        obj = json.loads(text)
    except ValueError:
        return error_message(text.strip()[:500] or "(empty body)")
    if isinstance(obj, Mapping):
        return error_message(obj.get("error", obj))
    return error_message(text.strip()[:500])


_HUNG_SUFFIX = ": stream hung"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def reply_end_notice(end: StreamEnd) -> str | None:
    """What to tell the user about how a reply ended; ``None`` for a normal end or a cancel."""
    message = _one_line(end.message)
    if end.status in ("done", "cancelled"):
        return None
    if end.status == "timed_out" and message.endswith(_HUNG_SUFFIX):
        detail = message.removesuffix(_HUNG_SUFFIX)
        return (
            f"reply hung ({detail}); llama-server may be stuck, a CUDA out-of-memory symptom: "
            "restart the server to recover"
        )
    kept = "; the text so far is kept" if end.text else ""
    if end.status == "connection_lost":
        return f"reply cut off: {message}{kept}"
    if end.status == "bad_stream":
        return f"reply ended: the server sent a broken stream ({message}){kept}"
    if end.status == "server_error":
        return f"the server refused the reply: {message}{kept}"
    return f"reply failed: {message}{kept}"
