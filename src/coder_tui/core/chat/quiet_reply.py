"""A quiet reply: streamed by the server, read once a second, decoded and shown whole at the end.

Why quiet: when no CPU core is idle, every wake of coder-tui takes a core from the model's
threads, so a fast reply is not drawn token by token: what the user sees meanwhile is the token
count (``DecodeProgress``, once per read), and the text when the reply is done.
``core/chat/reply_mode.py`` decides when a reply is quiet.

Why streamed all the same: a reply asked whole (``stream: false``) cannot be stopped. llama-server
looks for a closed connection of a whole-reply request only when no result of any task has come
for a second (``server_response_reader::next``, ``HTTP_POLLING_SECONDS``), so after Esc it went on
generating for 1-3 s, and a whole reply that never starts had no watchdog but ``/slots``. A
streamed request stops at the next token once its connection closes, and its bytes feed the same
stall watchdog as any stream. The server's HTTP thread then wakes per token; what that costs the
decode speed is measured by ``benchmarks/observer.py`` (arm c against a; docs/performance.md).

Why decoded at the end: decoding a token's event (SSE framing, JSON, the tally) is the one
per-token cost left on this side, and while the model decodes it would take a core from it. So
once the first token has come (its time is the reply's time to first token), the bytes are only
kept and their tokens counted (a byte search, ``count_tokens``); they are decoded when the stream
ends, is cancelled, stalls or fails, or when ``HOLD_BYTES`` have piled up (a long reply's memory
stays bounded: it is then decoded in steps of that size).

Owns ``QuietReply``: a ``ChatStream`` (``core/chat/stream.py``: the request, cancel, the
watchdog) read every ``read_gap_s`` whose text is held back: it yields ``DecodeProgress`` as the
tokens come, then the reply's ``Delta`` (one per kind of text), ``Finish``, ``Usage`` and
``Timings`` at once, and one ``StreamEnd``, so a caller iterates it exactly as a ``ChatStream``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from coder_tui.core.chat.connection import ChatConnection
from coder_tui.core.chat.events import ChatEvent, DecodeProgress, Delta, StreamEnd, StreamTally
from coder_tui.core.chat.stream import ChatStream, ReadItem

READ_GAP_S = 1.0
"""How often the socket is read (and the count shown): once a second, the least a user should
see move while no core is idle."""
HOLD_BYTES = 4 * 1024 * 1024
"""Held bytes past which they are decoded at once (about 12,000 tokens of llama-server events)."""
_TOKEN_KEYS = (b'content":"', b'content": "')
"""How a token's text starts in a chat event, compact (llama-server) or spaced: ``content`` and
``reasoning_content`` with a string value. The role event (``"content":null``), the finish,
usage and timings events hold none, and a text that contains the key has its quotes escaped."""
_OVERLAP = max(len(key) for key in _TOKEN_KEYS) - 1


def count_tokens(data: bytes) -> int:
    """The text tokens in ``data``, events of a chat stream (a byte search, no decoding)."""
    return sum(data.count(key) for key in _TOKEN_KEYS)


class QuietReply(ChatStream):
    """One reply shown whole: an async iterator of ``ChatEvent`` ending with one ``StreamEnd``.

    ``DecodeProgress`` events come while the server generates (at most one per ``read_gap_s``),
    then the held events. ``cancel()`` ends it with ``StreamEnd(status="cancelled")``, its text
    so far in ``StreamEnd.text`` and in the ``Delta`` before it."""

    def __init__(self, client: ChatConnection, body: dict[str, Any]) -> None:
        super().__init__(client, body)
        self.read_gap_s = READ_GAP_S
        self._held = bytearray()
        self._held_at = 0.0
        self._counted = 0
        self._shown_at = -float("inf")
        self._shown_n = 0

    async def _run(self) -> AsyncGenerator[ChatEvent, None]:
        held: list[ChatEvent] = []
        async for event in super()._run():
            if isinstance(event, StreamEnd):
                for kept in _merged(held):
                    yield kept
                yield event
                return
            if isinstance(event, DecodeProgress):
                yield event
            else:
                held.append(event)

    def _handle(self, item: ReadItem, state: StreamTally) -> list[ChatEvent]:
        if not isinstance(item, tuple):
            return self._flush(state) + super()._handle(item, state)
        data, at = item
        if state.first_token_at is None:  # decoded until the first token: its time is kept
            events = super()._handle(item, state)
            self._counted += sum(isinstance(e, Delta) for e in events)
        else:
            # The search runs over the held tail too: a key split across two reads counts once.
            tail = bytes(self._held[-_OVERLAP:])
            self._counted += count_tokens(tail + data) - count_tokens(tail)
            self._held += data
            self._held_at = at
            events = self._flush(state) if len(self._held) >= HOLD_BYTES else []
        fresh = self._counted > self._shown_n
        if fresh and at - self._shown_at >= self.read_gap_s / 2:
            # One count per read: the reads of one gap come within a few milliseconds.
            self._shown_at, self._shown_n = at, self._counted
            events.append(DecodeProgress(self._counted, at - state.started))
        return events

    def _flush(self, state: StreamTally) -> list[ChatEvent]:
        if not self._held:
            return []
        data, self._held = bytes(self._held), bytearray()
        return super()._handle((data, self._held_at), state)


def _merged(events: list[ChatEvent]) -> list[ChatEvent]:
    """The held events with each run of deltas of one kind joined into one delta (a long reply
    is then one update to draw, not one per token)."""
    out: list[ChatEvent] = []
    run: list[Delta] = []

    def flush() -> None:
        if run:
            out.append(Delta("".join(d.text for d in run), run[0].reasoning, run[-1].t_s))
            run.clear()

    for event in events:
        if isinstance(event, Delta) and (not run or run[0].reasoning == event.reasoning):
            run.append(event)
            continue
        flush()
        if isinstance(event, Delta):
            run.append(event)
        else:
            out.append(event)
    flush()
    return out
