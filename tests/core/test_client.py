"""The streaming chat client against scripted transports: the event sequence and every way a stream ends.

The fakes here exist to inject faults (a stall, a broken connection, garbage); the real server's
behaviour is checked in tests/integration/test_client_real.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from itertools import pairwise
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coder_tui.core.chat.client import (
    ChatClient,
    ChatEvent,
    Delta,
    Finish,
    PromptProgress,
    StreamEnd,
    Timings,
    Usage,
    check_slots_idle,
)
from coder_tui.core.sanitize import sanitize

MSGS = [{"role": "user", "content": "hi"}]
TIMINGS = {
    "cache_n": 3,
    "prompt_n": 12,
    "prompt_ms": 30.5,
    "prompt_per_token_ms": 2.5,
    "prompt_per_second": 393.4,
    "predicted_n": 2,
    "predicted_ms": 40.0,
    "predicted_per_token_ms": 20.0,
    "predicted_per_second": 50.0,
}


def chunk(
    content: str | None = None, *, reasoning: str | None = None, finish: str | None = None
) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    if content is not None:
        delta["content"] = content
    if reasoning is not None:
        delta["reasoning_content"] = reasoning
    return {
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        "object": "chat.completion.chunk",
    }


def sse(obj: object) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def llama_stream(*texts: str) -> list[bytes]:
    """The shape llama-server sends: role delta, content deltas, finish, usage+timings, [DONE]."""
    out = [
        sse(
            {
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": None},
                        "finish_reason": None,
                    }
                ]
            }
        )
    ]
    out += [sse(chunk(t)) for t in texts]
    out.append(sse(chunk(finish="stop")))
    out.append(
        sse(
            {
                "choices": [],
                "usage": {
                    "prompt_tokens": 12,
                    "completion_tokens": len(texts),
                    "total_tokens": 12 + len(texts),
                },
                "timings": TIMINGS,
            }
        )
    )
    out.append(b"data: [DONE]\n\n")
    return out


Step = bytes | float | Exception


class Script(httpx.AsyncByteStream):
    """A response body: bytes are sent, floats are sleeps, an exception is raised there."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps
        self.closed = False
        self.pulled_at: list[float] = []
        """When each bytes step was taken by the reader."""

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        for step in self.steps:
            if isinstance(step, bytes):
                self.pulled_at.append(time.monotonic())
            if isinstance(step, float):
                await asyncio.sleep(step)
            elif isinstance(step, Exception):
                raise step
            else:
                yield step

    async def aclose(self) -> None:
        self.closed = True


class Server:
    """A MockTransport handler recording requests and answering ``/slots``."""

    def __init__(
        self,
        steps: list[Step],
        *,
        status: int = 200,
        content_type: str = "text/event-stream",
        slots: Callable[[], httpx.Response] | None = None,
    ) -> None:
        self.body = Script(steps)
        self.status = status
        self.content_type = content_type
        self.requests: list[httpx.Request] = []
        self.slots = slots or (
            lambda: httpx.Response(200, json=[{"id": 0, "is_processing": False}])
        )

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/slots":
            return self.slots()
        return httpx.Response(
            self.status, headers={"content-type": self.content_type}, stream=self.body
        )

    def client(self, **kw: Any) -> ChatClient:
        return ChatClient("http://test:8080/v1/", transport=httpx.MockTransport(self), **kw)


async def run(server: Server, **kw: Any) -> list[ChatEvent]:
    async with server.client(**kw) as client:
        events = [e async for e in client.stream_chat(MSGS, max_tokens=8, temperature=0, seed=1)]
    assert sum(isinstance(e, StreamEnd) for e in events) == 1 and isinstance(events[-1], StreamEnd)
    return events


def end_of(events: list[ChatEvent]) -> StreamEnd:
    end = events[-1]
    assert isinstance(end, StreamEnd)
    return end


async def test_normal_stream_event_sequence_and_request() -> None:
    server = Server(llama_stream("Hel", "lo"))
    events = await run(server)
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Delta", "Delta", "Finish", "Usage", "Timings", "StreamEnd"]
    assert [e.text for e in events if isinstance(e, Delta)] == ["Hel", "lo"]
    assert events[2] == Finish("stop")
    assert events[3] == Usage(12, 2)
    assert events[4] == Timings(12, 30.5, 393.4, 2, 40.0, 50.0, 3)
    end = end_of(events)
    assert end.status == "done" and end.message == "" and end.text == "Hello"
    assert end.finish_reason == "stop" and end.timings == events[4] and end.usage == events[3]
    assert end.ttft_s is not None and 0 <= end.ttft_s <= end.elapsed_s
    assert end.first_token_at == end.started_at + end.ttft_s
    assert end.http_status == 200 and end.server_still_generating is None

    (request,) = server.requests
    assert request.url.path == "/v1/chat/completions" and request.method == "POST"
    body = json.loads(request.content)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["timings_per_token"] is False and body["messages"] == MSGS
    assert (body["max_tokens"], body["temperature"], body["seed"]) == (8, 0, 1)
    assert "authorization" not in request.headers


async def test_api_key_and_extra_fields() -> None:
    server = Server(llama_stream("x"))
    async with ChatClient("http://test", "sekrit", transport=httpx.MockTransport(server)) as client:
        [e async for e in client.stream_chat(MSGS, extra={"ignore_eos": True, "stream": True})]
    assert server.requests[0].headers["authorization"] == "Bearer sekrit"
    assert json.loads(server.requests[0].content)["ignore_eos"] is True


async def test_reasoning_progress_and_arrival_times() -> None:
    progress = {
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": None}}],
        "prompt_progress": {"total": 20, "cache": 4, "processed": 10, "time_ms": 5.0},
    }
    server = Server(
        [
            sse(progress),
            0.02,
            sse(chunk(reasoning="think")),
            sse(chunk("answer")),
            sse(chunk(finish="stop")),
            b"data: [DONE]\n\n",
        ]
    )
    events = await run(server)
    assert events[0] == PromptProgress(20, 4, 10, 5.0)
    deltas = [e for e in events if isinstance(e, Delta)]
    assert [(d.text, d.reasoning) for d in deltas] == [("think", True), ("answer", False)]
    assert deltas[0].t_s >= 0.02
    end = end_of(events)
    assert end.text == "answer" and end.reasoning_text == "think"
    assert end.ttft_s is not None and end.ttft_s >= 0.02  # the first token is the reasoning one


def bursts(times: list[float], apart_s: float = 0.005) -> int:
    """How many groups ``times`` fall into, a new group after a pause longer than ``apart_s``."""
    return 1 + sum(b - a > apart_s for a, b in pairwise(times))


class Paced(httpx.AsyncByteStream):
    """A body whose chunks arrive in real time, every ``every_s``, whether or not they are read:
    what is not read yet waits in a buffer, like bytes in a socket."""

    def __init__(self, parts: list[bytes], every_s: float) -> None:
        self.parts = parts
        self.every_s = every_s

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        buffer: asyncio.Queue[bytes | None] = asyncio.Queue()

        async def produce() -> None:
            for part in self.parts:
                await asyncio.sleep(self.every_s)
                buffer.put_nowait(part)
            buffer.put_nowait(None)

        task = asyncio.create_task(produce())
        try:
            while (part := await buffer.get()) is not None:
                yield part
        finally:
            task.cancel()


async def test_read_gap_takes_the_waiting_tokens_in_one_go() -> None:
    texts = [f"t{i}" for i in range(40)]
    body = Paced(llama_stream(*texts), every_s=0.005)  # 200 tokens a second

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=body)

    async with ChatClient("http://test", transport=httpx.MockTransport(handler)) as client:
        stream = client.stream_chat(MSGS)
        events: list[ChatEvent] = []
        async for event in stream:
            events.append(event)
            if isinstance(event, Delta):
                stream.read_gap_s = 0.05  # from the first token on, as the chat pane does
    assert end_of(events).status == "done" and end_of(events).text == "".join(texts)
    arrivals = [e.t_s for e in events if isinstance(e, Delta)]
    assert bursts(arrivals, apart_s=0.003) <= 10, arrivals  # 40 tokens in 0.2 s: about 4 reads
    lag = max(b - a for a, b in pairwise(arrivals))
    assert lag < 0.05 + 0.04, arrivals  # never much more than the gap between two reads
    assert end_of(events).elapsed_s < 0.2 + 0.05 + 0.1  # the last read is at most a gap late


async def test_read_gap_never_sleeps_between_buffered_chunks() -> None:
    texts = [f"t{i}" for i in range(30)]
    server = Server(llama_stream(*texts))  # all bytes at once
    async with server.client() as client:
        stream = client.stream_chat(MSGS)
        stream.read_gap_s = 0.5
        started = time.monotonic()
        events = [e async for e in stream]
    assert end_of(events).text == "".join(texts)
    assert time.monotonic() - started < 0.5  # at most one sleep, after the first wait


async def test_mid_stream_error_json_is_server_error() -> None:
    err = {"error": {"code": 500, "message": "context shift is disabled", "type": "server_error"}}
    events = await run(Server([sse(chunk("par")), sse(err)]))
    end = end_of(events)
    assert end.status == "server_error" and end.message == "context shift is disabled"
    assert end.text == "par"


async def test_error_event_type_is_server_error() -> None:
    end = end_of(await run(Server([b'event: error\ndata: {"error": {"message": "boom"}}\n\n'])))
    assert end.status == "server_error" and end.message == "boom"


async def test_http_error_before_stream() -> None:
    body = json.dumps(
        {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}
    )
    end = end_of(await run(Server([body.encode()], status=503, content_type="application/json")))
    assert end.status == "server_error" and end.http_status == 503
    assert end.message == "HTTP 503: Loading model" and end.ttft_s is None
    end = end_of(await run(Server([b"<h1>bad gateway</h1>"], status=502, content_type="text/html")))
    assert end.status == "server_error" and end.message == "HTTP 502: <h1>bad gateway</h1>"


async def test_connection_closed_without_done() -> None:
    for exc in (httpx.RemoteProtocolError("peer closed connection"), httpx.ReadError("reset")):
        end = end_of(await run(Server([sse(chunk("partial")), 0.01, exc])))
        assert end.status == "connection_lost" and end.text == "partial"
        assert ("peer closed" in end.message) or ("reset" in end.message)
    # a clean close (EOF) without a finish reason is a cut reply too
    end = end_of(await run(Server([sse(chunk("partial")), b'data: {"choi'])))
    assert end.status == "connection_lost" and end.text == "partial"


async def test_close_after_finish_reason_without_done_counts_as_done() -> None:
    end = end_of(await run(Server([sse(chunk("all")), sse(chunk(finish="length"))])))
    assert end.status == "done" and end.finish_reason == "length"


async def test_cannot_connect() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with ChatClient("http://test", transport=httpx.MockTransport(refuse)) as client:
        events = [e async for e in client.stream_chat(MSGS)]
    end = end_of(events)
    assert end.status == "connection_lost" and "cannot connect" in end.message

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    async with ChatClient("http://test", transport=httpx.MockTransport(slow)) as client:
        end = end_of([e async for e in client.stream_chat(MSGS)])
    assert end.status == "timed_out" and "within 5 s" in end.message


async def test_garbage_bytes_are_bad_stream() -> None:
    end = end_of(await run(Server([b"\x00\xff\xfe garbage\n\n", b"data: nope\n\n"])))
    assert end.status == "bad_stream"


async def test_wrong_content_type_is_bad_stream() -> None:
    end = end_of(await run(Server([b"{}"], content_type="application/json")))
    assert end.status == "bad_stream" and "application/json" in end.message


async def test_stall_watchdog_ends_a_hung_stream_promptly() -> None:
    server = Server([sse(chunk("a")), b":\n\n", 0.1, b": ping\n\n", 0.1, sse(chunk("b")), 30.0])
    t0 = time.monotonic()
    events = await run(server, stall_timeout_s=0.3)
    took = time.monotonic() - t0
    end = end_of(events)
    # pings reset the watchdog (0.1 s gaps); the 30 s silence trips it after 0.3 s
    assert end.status == "timed_out" and "hung" in end.message and end.text == "ab"
    assert took < 2.5
    assert end.server_still_generating is False  # /slots said idle
    assert server.body.closed


async def test_stall_before_headers() -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/slots":
            return httpx.Response(501, json={"error": {"message": "disabled"}})
        await asyncio.sleep(30)
        raise AssertionError("unreachable")

    async with ChatClient(
        "http://t", stall_timeout_s=0.2, transport=httpx.MockTransport(hang)
    ) as c:
        end = end_of([e async for e in c.stream_chat(MSGS)])
    assert end.status == "timed_out" and end.server_still_generating is None


async def test_cancel_after_first_delta() -> None:
    busy = iter([True, True, False])

    def slots() -> httpx.Response:
        return httpx.Response(200, json=[{"id": 0, "is_processing": next(busy, False)}])

    server = Server([sse(chunk("one")), 0.05, sse(chunk("two")), 30.0], slots=slots)
    async with server.client() as client:
        stream = client.stream_chat(MSGS)
        events: list[ChatEvent] = []
        t0 = time.monotonic()
        async for event in stream:
            events.append(event)
            if isinstance(event, Delta):
                stream.cancel()
                stream.cancel()  # twice is harmless
    end = end_of(events)
    assert [type(e) for e in events] == [Delta, StreamEnd]
    assert end.status == "cancelled" and end.text == "one"
    assert end.server_still_generating is False  # busy, busy, then idle within the second
    assert time.monotonic() - t0 < 1.5 and server.body.closed


async def test_cancel_from_another_task_while_waiting() -> None:
    server = Server(
        [sse(chunk("one")), 30.0], slots=lambda: httpx.Response(200, json=[{"is_processing": True}])
    )
    async with server.client() as client:
        stream = client.stream_chat(MSGS)

        async def consume() -> list[ChatEvent]:
            return [e async for e in stream]

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        stream.cancel()
        events = await asyncio.wait_for(task, 3)
    end = end_of(events)
    assert end.status == "cancelled" and end.server_still_generating is True


async def test_task_cancellation_closes_the_stream_and_propagates() -> None:
    server = Server([sse(chunk("one")), 30.0])
    async with server.client() as client:
        seen: list[ChatEvent] = []

        async def consume() -> None:
            async for e in client.stream_chat(MSGS):
                seen.append(e)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=2)
        assert done and task.cancelled()
    assert server.body.closed and [type(e) for e in seen] == [Delta]


async def test_breaking_out_closes_the_stream() -> None:
    server = Server([sse(chunk("one")), 30.0])
    async with server.client() as client:
        stream = client.stream_chat(MSGS)
        async for _ in stream:
            break
        await stream.aclose()
    assert server.body.closed


async def test_check_slots_idle_variants() -> None:
    def serve(response: httpx.Response) -> httpx.MockTransport:
        return httpx.MockTransport(lambda request: response)

    idle = httpx.Response(
        200, json=[{"id": 0, "is_processing": False}, {"id": 1, "is_processing": False}]
    )
    busy = httpx.Response(200, json=[{"id": 0, "is_processing": True}])
    assert await check_slots_idle("http://t", transport=serve(idle)) is True
    assert await check_slots_idle("http://t", wait_s=0.2, transport=serve(busy)) is False
    assert await check_slots_idle("http://t", transport=serve(httpx.Response(501, json={}))) is None
    assert (
        await check_slots_idle("http://t", transport=serve(httpx.Response(200, text="x"))) is None
    )


_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@given(
    pieces=st.lists(st.text(max_size=20), min_size=1, max_size=6), reasoning=st.text(max_size=10)
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
async def test_no_control_character_gets_through(pieces: list[str], reasoning: str) -> None:
    steps: list[Step] = [sse(chunk(reasoning=reasoning))] + [sse(chunk(p)) for p in pieces]
    steps += [sse(chunk(finish="stop\x1b[2J")), b"data: [DONE]\n\n"]
    events = await run(Server(steps))
    for event in events:
        if isinstance(event, Delta):
            assert not _UNSAFE.search(event.text)
    end = end_of(events)
    assert end.status == "done"
    assert not _UNSAFE.search(end.text + end.reasoning_text + (end.finish_reason or ""))
    # Control characters are dropped; invisible format controls (bidi, soft hyphen) are shown.
    expected = sanitize("".join(pieces))
    assert end.text == expected
