"""The quiet reply (streamed by the server, read once a gap, shown whole) against scripted
streams: the events, the token counts, the stall watchdog (a reply that never starts too), cancel.
The real server is in ``tests/integration/test_client_real.py``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from tests.fakes.sse_frames import delta, sse

from coder_tui.core.chat import quiet_reply
from coder_tui.core.chat.client import ChatClient
from coder_tui.core.chat.events import (
    ChatEvent,
    DecodeProgress,
    Delta,
    Finish,
    StreamEnd,
    Timings,
)
from coder_tui.core.chat.quiet_reply import count_tokens
from coder_tui.core.chat.reply_mode import quiet_next
from coder_tui.core.chat.sse import SSEDecoder
from coder_tui.core.store.schema import DecodeRun

MSGS = [{"role": "user", "content": "hi"}]
TIMINGS = {
    "cache_n": 0,
    "prompt_n": 12,
    "prompt_ms": 300.0,
    "prompt_per_second": 40.0,
    "predicted_n": 4,
    "predicted_ms": 400.0,
    "predicted_per_second": 10.0,
}


TAIL = [
    sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}),
    sse({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 4}}),
    sse({"choices": [], "timings": TIMINGS}),
    b"data: [DONE]\n\n",
]


class Body(httpx.AsyncByteStream):
    """A streamed body: bytes are sent, floats are pauses; notes when the client closed it."""

    def __init__(self, steps: list[bytes | float], server: Server) -> None:
        self.steps = steps
        self.server = server

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        for step in self.steps:
            if isinstance(step, float):
                await asyncio.sleep(step)
            else:
                yield step

    async def aclose(self) -> None:
        self.server.closed = True


class Server:
    """Streams ``steps`` (bytes, and floats as pauses); ``/slots`` says idle."""

    def __init__(self, steps: list[bytes | float]) -> None:
        self.steps = steps
        self.bodies: list[dict[str, Any]] = []
        self.closed = False

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/slots":
            return httpx.Response(200, json=[{"id": 0, "is_processing": False}])
        self.bodies.append(json.loads(request.content))
        headers = {"content-type": "text/event-stream"}
        return httpx.Response(200, headers=headers, stream=Body(self.steps, self))

    def client(self, **kw: Any) -> ChatClient:
        return ChatClient("http://test:8080", transport=httpx.MockTransport(self), **kw)


async def run(server: Server, read_gap_s: float = 0.05, **kw: Any) -> list[ChatEvent]:
    async with server.client(**kw) as client:
        reply = client.quiet_chat(MSGS, max_tokens=4, temperature=0)
        reply.read_gap_s = read_gap_s
        events = [e async for e in reply]
    assert sum(isinstance(e, StreamEnd) for e in events) == 1 and isinstance(events[-1], StreamEnd)
    return events


async def test_counts_then_the_whole_reply_as_stream_events() -> None:
    steps: list[bytes | float] = [delta(reasoning="hm"), 0.1, delta("def "), 0.1]
    server = Server([*steps, delta("f():"), 0.1, delta("\x1b[31m"), *TAIL])
    events = await run(server)
    body = server.bodies[0]
    assert body["stream"] is True and body["max_tokens"] == 4  # streamed: Esc can stop it
    progress = [e.n_decoded for e in events if isinstance(e, DecodeProgress)]
    assert progress == [1, 2, 3, 4]  # one count a read (a read every 0.05 s, a token every 0.1)
    first_delta = next(i for i, e in enumerate(events) if isinstance(e, Delta))
    assert all(not isinstance(e, DecodeProgress) for e in events[first_delta:])
    deltas = [e for e in events if isinstance(e, Delta)]
    # held back, then one delta per kind of text: one update to draw, whatever the length
    assert [(d.text, d.reasoning) for d in deltas] == [("hm", True), ("def f():[31m", False)]
    assert any(isinstance(e, Finish) and e.reason == "length" for e in events)
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.status == "done"
    assert end.text == "def f():[31m" and end.reasoning_text == "hm"
    assert end.timings is not None and end.timings.predicted_n == 4
    assert any(isinstance(e, Timings) for e in events)
    assert end.ttft_s is not None and 0 < end.ttft_s < 0.1  # the first token's arrival


async def test_a_count_a_read_however_many_tokens_came() -> None:
    server = Server([delta("x")] * 50 + [0.3] + [delta("y")] * 50 + TAIL)
    events = await run(server, read_gap_s=0.2)
    progress = [e.n_decoded for e in events if isinstance(e, DecodeProgress)]
    assert 1 <= len(progress) <= 4 and progress[-1] <= 100  # not one a token
    assert [e.text for e in events if isinstance(e, Delta)] == ["x" * 50 + "y" * 50]


def test_count_tokens_finds_text_events_only() -> None:
    compact = b'data: {"choices":[{"delta":{"content":"x"}}]}\n\n'
    role = b'data: {"choices":[{"delta":{"role":"assistant","content":null}}]}\n\n'
    quoted = delta('say content":"x')  # the text's quotes are escaped: one token, not two
    assert count_tokens(compact + role + delta("a") + delta(reasoning="b") + quoted) == 4
    assert count_tokens(b"".join(TAIL)) == 0


async def test_bytes_after_the_first_token_are_decoded_once_at_the_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While the model decodes, no event is decoded here (it would take a core from the model):
    the first token for its time, then one decode of everything at the end."""
    feeds: list[int] = []
    real_feed = SSEDecoder.feed

    def counted(self: SSEDecoder, data: bytes) -> list[Any]:
        feeds.append(len(data))
        return real_feed(self, data)

    monkeypatch.setattr(SSEDecoder, "feed", counted)
    steps: list[bytes | float] = [delta("a"), 0.05]
    for _ in range(6):  # six reads of ten tokens, one key split across two chunks each time
        frame = delta("b")
        steps += [delta("x")] * 9 + [frame[:30], frame[30:], 0.05]
    events = await run(Server([*steps, *TAIL]), read_gap_s=0.02)
    progress = [e.n_decoded for e in events if isinstance(e, DecodeProgress)]
    assert progress[-1] == 61 and progress == sorted(progress) and len(progress) >= 3
    assert [e.text for e in events if isinstance(e, Delta)] == ["a" + ("x" * 9 + "b") * 6]
    assert len(feeds) <= 3, feeds  # the first token, everything held, the stream's end
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.status == "done" and end.ttft_s is not None
    assert end.ttft_s < 0.05  # the first token's arrival, not the decode at the end


async def test_a_long_reply_is_decoded_in_steps_of_the_hold_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(quiet_reply, "HOLD_BYTES", 2000)
    server = Server([delta("a"), 0.02] + [delta(f"{i} ") for i in range(300)] + TAIL)
    events = await run(server, read_gap_s=0.01)
    text = "a" + "".join(f"{i} " for i in range(300))
    assert [e.text for e in events if isinstance(e, Delta)] == [text]
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.status == "done" and end.text == text


async def test_a_reply_that_never_starts_times_out() -> None:
    server = Server([30.0, *TAIL])
    events = await run(server, stall_timeout_s=0.3)
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.status == "timed_out", end
    assert "no data from the server for 0.3 s" in end.message
    assert server.closed and end.elapsed_s < 3


async def test_cancel_closes_the_request_and_keeps_the_text() -> None:
    server = Server([delta("part"), 0.1, delta("ial"), 30.0, *TAIL])
    async with server.client() as client:
        reply = client.quiet_chat(MSGS)
        reply.read_gap_s = 0.05
        events: list[ChatEvent] = []
        async for event in reply:
            events.append(event)
            if isinstance(event, DecodeProgress) and event.n_decoded == 2:
                reply.cancel()
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.status == "cancelled" and end.text == "partial"
    assert [e.text for e in events if isinstance(e, Delta)] == ["partial"]
    assert server.closed and reply.cancel_requested


async def test_a_server_error_is_one_stream_end() -> None:
    async def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": {"message": "exceeds the context"}})

    async with ChatClient("http://test:8080", transport=httpx.MockTransport(refuse)) as client:
        events = [e async for e in client.quiet_chat(MSGS)]
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.status == "server_error"
    assert "exceeds the context" in end.message


LOCAL = "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("last", "threshold", "url", "quiet"),
    [
        (None, 100, LOCAL, False),
        (DecodeRun(330, True), 100, LOCAL, True),
        (DecodeRun(330, True), 100, "http://localhost:8080/v1", True),
        (DecodeRun(330, True, quiet=True), 100, LOCAL, True),  # stays quiet while it still holds
        (DecodeRun(330, False), 100, LOCAL, False),  # a core was idle: streaming costs nothing
        (DecodeRun(21.8, True), 100, LOCAL, False),  # the seed's big MoE: a wake per token is cheap
        (DecodeRun(330, True), 0, LOCAL, False),  # turned off
        (DecodeRun(330, True), 100, "http://10.0.0.7:8080", False),  # idle cores here say nothing
        (DecodeRun(330, True), 100, "https://gpu-box.lan", False),
    ],
)
def test_quiet_next(last: DecodeRun | None, threshold: float, url: str, quiet: bool) -> None:
    assert quiet_next(last, threshold, url) is quiet
