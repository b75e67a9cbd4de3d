"""A quiet reply: streamed by the server, read from the socket once a second, shown whole at the end.

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

Owns ``QuietReply``: a ``ChatStream`` (``core/chat/stream.py``: the request, cancel, the
watchdog) read every ``read_gap_s`` whose text is held back: it yields ``DecodeProgress`` as the
tokens come, then the reply's ``Delta`` (one per kind of text), ``Finish``, ``Usage`` and
``Timings`` at once, and one ``StreamEnd``, so a caller iterates it exactly as a ``ChatStream``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import Any

from coder_tui.core.chat.connection import ChatConnection
from coder_tui.core.chat.events import ChatEvent, DecodeProgress, Delta, StreamEnd
from coder_tui.core.chat.stream import ChatStream

READ_GAP_S = 1.0
"""How often the socket is read (and the count shown): once a second, the least a user should
see move while no core is idle."""


class QuietReply(ChatStream):
    """One reply shown whole: an async iterator of ``ChatEvent`` ending with one ``StreamEnd``.

    ``DecodeProgress`` events come while the server generates (at most one per ``read_gap_s``),
    then the held events. ``cancel()`` ends it with ``StreamEnd(status="cancelled")``, its text
    so far in ``StreamEnd.text`` and in the ``Delta`` before it."""

    def __init__(self, client: ChatConnection, body: dict[str, Any]) -> None:
        super().__init__(client, body)
        self.read_gap_s = READ_GAP_S

    async def _run(self) -> AsyncGenerator[ChatEvent, None]:
        started = time.monotonic()
        held: list[ChatEvent] = []
        decoded = 0
        shown_at = -float("inf")
        async for event in super()._run():
            if isinstance(event, StreamEnd):
                for kept in _merged(held):
                    yield kept
                yield event
                return
            held.append(event)
            if isinstance(event, Delta):
                decoded += 1
                now = time.monotonic()
                # One count per read: the reads of one gap come within a few milliseconds.
                if now - shown_at >= self.read_gap_s / 2:
                    shown_at = now
                    yield DecodeProgress(decoded, now - started)


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
