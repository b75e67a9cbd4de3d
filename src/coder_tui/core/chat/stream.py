"""One streamed chat reply: the reader task, the stall watchdog, cancel, and its events.

Owns ``ChatStream`` (what ``ChatClient.stream_chat`` returns: ``POST /v1/chat/completions`` with
``stream: true``, framed by ``core/chat/sse.py``). What it shares with the other transport
(``core/chat/quiet_reply.py``: the connection, ``ReplyEvents``, how a failed request or a cancel
ends) is ``core/chat/connection.py``'s; ``core/chat/client.py`` offers both.

One reader task owns the HTTP response and puts what it reads on a queue; the generator the caller
iterates takes from the queue. So a cancel or the watchdog only has to put a marker on the queue,
and ending the stream is one ``task.cancel()`` that closes the response wherever it was waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from coder_tui.core.chat.connection import (
    CHAT_PATH,
    ChatConnection,
    ReplyEvents,
    end_for_failure,
    still_generating,
)
from coder_tui.core.chat.events import (
    ChatEvent,
    StreamTally,
    http_error_text,
)
from coder_tui.core.chat.sse import SSEDecoder, SSEError, SSEEvent

_ERROR_BODY_LIMIT = 64 * 1024
_TURN_S = 0.01
"""Longest run of queued events handled without letting the event loop in (keys, frames)."""
_BUFFERED_S = 0.003
"""A chunk that came sooner than this after the previous one was already buffered."""


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name


_EOF = _Marker("eof")
_STALL = _Marker("stall")


@dataclass(frozen=True)
class _Opened:
    content_type: str


@dataclass(frozen=True)
class _HttpError:
    status: int
    body: bytes


@dataclass(frozen=True)
class _Failed:
    exc: Exception


ReadItem = tuple[bytes, float] | _Marker | _Opened | _HttpError | _Failed
"""What the reader task puts on the queue: bytes read (with their time), or how reading went."""


class ChatStream(ReplyEvents):
    """One streamed reply: an async iterator of ``ChatEvent`` ending with one ``StreamEnd``.

    ``cancel()`` may be called from any task on the same event loop, at any time; the iteration then
    yields ``StreamEnd(status="cancelled")`` promptly (after closing the HTTP stream and up to about
    a second of ``/slots`` checks). Breaking out of the loop or ``aclose()`` also closes the stream.

    ``read_gap_s`` (settable at any time) makes the reader wait that long once it has caught up, so
    the tokens of the gap wait in the socket and are taken in one go instead of one wake-up each.
    The stall watchdog and ``cancel()`` are unaffected; event times are those of the reads.
    """

    def __init__(self, client: ChatConnection, body: dict[str, Any]) -> None:
        super().__init__(client, body)
        self._decoder = SSEDecoder()
        self._last_byte = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # -- the reader task ------------------------------------------------------------------------

    def _touch(self) -> None:
        self._last_byte = time.monotonic()

    def _watch(self) -> None:
        """Timer callback: put the stall marker once no byte has come for ``stall_timeout_s``."""
        idle = time.monotonic() - self._last_byte
        limit = self._client.stall_timeout_s
        if idle >= limit:
            self._timer = None
            self._queue.put_nowait(_STALL)
        else:
            self._timer = asyncio.get_running_loop().call_later(limit - idle, self._watch)

    async def _read(self) -> None:
        queue = self._queue
        try:
            async with self._client.http.stream(
                "POST", CHAT_PATH, json=self._body, headers={"Accept": "text/event-stream"}
            ) as resp:
                self._touch()
                if resp.status_code != 200:
                    body = b""
                    async for part in resp.aiter_bytes():
                        body += part
                        if len(body) > _ERROR_BODY_LIMIT:
                            break
                    queue.put_nowait(_HttpError(resp.status_code, body))
                    return
                queue.put_nowait(_Opened(resp.headers.get("content-type", "")))
                waited_from = time.monotonic()
                async for data in resp.aiter_bytes():
                    self._touch()
                    queue.put_nowait((data, self._last_byte))
                    # httpx yields one HTTP chunk (one token) at a time, buffered or not: sleep
                    # only once a chunk had to be waited for, i.e. the buffer is drained.
                    if self.read_gap_s > 0 and self._last_byte - waited_from > _BUFFERED_S:
                        await asyncio.sleep(self.read_gap_s)
                    waited_from = time.monotonic()
                queue.put_nowait(_EOF)
        except Exception as exc:  # every failure becomes a StreamEnd, never an exception
            queue.put_nowait(_Failed(exc))

    # -- the caller's iteration -----------------------------------------------------------------

    async def _run(self) -> AsyncGenerator[ChatEvent, None]:
        state = StreamTally(started=time.monotonic())
        loop = asyncio.get_running_loop()
        self._last_byte = state.started
        self._timer = loop.call_later(self._client.stall_timeout_s, self._watch)
        reader = loop.create_task(self._read())
        busy_from = time.monotonic()
        try:
            while state.status is None:
                if self._queue.empty() or time.monotonic() - busy_from < _TURN_S:
                    item = await self._queue.get()
                else:
                    # Tokens read faster than they are handled: a queue that is never empty
                    # never suspends this loop, and keys wait. Let the event loop in.
                    await asyncio.sleep(0)
                    busy_from = time.monotonic()
                    item = self._queue.get_nowait()
                if self._queue.empty():
                    busy_from = time.monotonic()
                if self._cancel_requested:
                    for event in self._flush(state):
                        yield event
                    state.end("cancelled", "cancelled")
                    break
                for event in self._handle(item, state):
                    yield event
                    if self._cancel_requested:
                        for held in self._flush(state):
                            yield held
                        state.end("cancelled", "cancelled")
                        break
        except Exception as exc:
            state.end("bad_stream", f"internal error: {exc!r}")
        finally:
            if self._timer is not None:
                self._timer.cancel()
            reader.cancel()
            await asyncio.wait([reader])  # closes the response; never raises the reader's error
        still = await still_generating(self._client, state)
        yield state.end_event(time.monotonic(), still)

    def _flush(self, state: StreamTally) -> list[ChatEvent]:
        """The events of bytes read but not yet decoded, before a cancel ends the reply (none
        here: every read is decoded at once; ``QuietReply`` holds bytes back)."""
        return []

    def _handle(self, item: ReadItem, state: StreamTally) -> list[ChatEvent]:
        if isinstance(item, tuple):
            data, at = item
            try:
                return self._on_sse(self._decoder.feed(data), at, state)
            except SSEError as exc:
                state.end("bad_stream", str(exc))
                return []
        if isinstance(item, _Opened):
            state.http_status = 200
            if item.content_type and "event-stream" not in item.content_type.lower():
                state.end("bad_stream", f"expected an event stream, got {item.content_type!r}")
        elif isinstance(item, _HttpError):
            state.http_status = item.status
            state.end("server_error", f"HTTP {item.status}: {http_error_text(item.body)}")
        elif item is _EOF:
            events = self._on_sse(self._decoder.close(), time.monotonic(), state)
            state.ended_early("the server closed the connection before the reply finished")
            return events
        elif isinstance(item, _Failed):
            end_for_failure(item.exc, state, self._client)
        elif item is _STALL:
            state.stalled = True
            state.end(
                "timed_out",
                f"no data from the server for {self._client.stall_timeout_s:g} s: stream hung",
            )
        return []

    def _on_sse(self, events: list[SSEEvent], at: float, state: StreamTally) -> list[ChatEvent]:
        out: list[ChatEvent] = []
        for sse in events:
            if state.status is not None:
                break
            data = sse.data
            if sse.event == "error":
                state.end("server_error", http_error_text(data.encode()))
            elif sse.event != "message" or not data.strip():
                continue
            elif data == "[DONE]":
                state.end("done")
            else:
                out.extend(state.take(data, at))
        return out
