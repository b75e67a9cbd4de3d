"""The quiet reply (asked whole, progress from /slots) against scripted answers: the events, the
poll, the stall watchdog, cancel, errors and garbage. The real server is in
``tests/integration/test_client_real.py``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from coder_tui.core.chat.client import ChatClient
from coder_tui.core.chat.events import (
    ChatEvent,
    DecodeProgress,
    Delta,
    Finish,
    StreamEnd,
    Timings,
    answer_chunk,
)
from coder_tui.core.chat.quiet_reply import QuietReply, slot_progress
from coder_tui.core.chat.reply_mode import quiet_next
from coder_tui.core.metrics.server_payloads import parse_slots
from coder_tui.core.metrics.types import ServerPhase, SlotSample
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
ANSWER = {
    "choices": [
        {
            "index": 0,
            "finish_reason": "length",
            "message": {
                "role": "assistant",
                "content": "def f():\x1b[31m",
                "reasoning_content": "hm",
            },
        }
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 4},
    "timings": TIMINGS,
}


def slot(task: int, decoded: int, processing: bool = True, processed: int = 12) -> dict[str, Any]:
    return {
        "id": task % 4,
        "id_task": task,
        "is_processing": processing,
        "n_prompt_tokens_processed": processed,
        "next_token": [{"n_decoded": decoded}],
    }


class Server:
    """Answers the POST after ``delay_s`` (or never, or with an error); ``/slots`` from a script."""

    def __init__(
        self,
        *,
        delay_s: float = 0.35,
        answer: bytes | None = None,
        status: int = 200,
        slots: list[Any] | None = None,
        fail: Exception | None = None,
    ) -> None:
        self.delay_s = delay_s
        self.answer = json.dumps(ANSWER).encode() if answer is None else answer
        self.status = status
        self.slots = slots
        self.fail = fail
        self.polls = 0
        self.bodies: list[dict[str, Any]] = []
        self.post_cancelled = False

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/slots":
            self.polls += 1
            if self.slots is None:
                return httpx.Response(501, json={"error": {"message": "slots disabled"}})
            script = self.slots
            return httpx.Response(200, json=script[min(self.polls, len(script)) - 1])
        self.bodies.append(json.loads(request.content))
        try:
            await asyncio.sleep(self.delay_s)
        except asyncio.CancelledError:
            self.post_cancelled = True
            raise
        if self.fail is not None:
            raise self.fail
        return httpx.Response(self.status, content=self.answer)

    def client(self, **kw: Any) -> ChatClient:
        return ChatClient("http://test:8080", transport=httpx.MockTransport(self), **kw)


async def run(server: Server, **kw: Any) -> list[ChatEvent]:
    async with server.client(**kw) as client:
        reply = client.quiet_chat(MSGS, max_tokens=4, temperature=0)
        reply.read_gap_s = 0.05
        events = [e async for e in reply]
    assert sum(isinstance(e, StreamEnd) for e in events) == 1 and isinstance(events[-1], StreamEnd)
    return events


async def test_progress_then_the_whole_reply_as_stream_events() -> None:
    server = Server(slots=[[slot(7, 0, processed=5)], [slot(7, 2)], [slot(7, 2)], [slot(7, 4)]])
    events = await run(server)
    body = server.bodies[0]
    assert body["stream"] is False and "stream_options" not in body and body["max_tokens"] == 4
    progress = [e.n_decoded for e in events if isinstance(e, DecodeProgress)]
    assert progress and progress == sorted(progress) and 0 not in progress  # only changes, > 0
    assert len(set(progress)) == len(progress)
    deltas = [e for e in events if isinstance(e, Delta)]
    assert [(d.text, d.reasoning) for d in deltas] == [("hm", True), ("def f():[31m", False)]
    assert any(isinstance(e, Finish) and e.reason == "length" for e in events)
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.status == "done"
    assert end.text == "def f():[31m" and end.reasoning_text == "hm"
    assert end.timings is not None and end.timings.predicted_n == 4
    assert any(isinstance(e, Timings) for e in events)
    # time to first token: the server's prompt time plus one token's (0.3 + 0.1 s), not arrival
    assert end.ttft_s == pytest.approx(0.4)


async def test_slots_off_still_gives_the_reply() -> None:
    events = await run(Server(slots=None))
    assert not any(isinstance(e, DecodeProgress) for e in events)
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.status == "done" and end.text.startswith("def f")


async def test_no_progress_for_the_stall_timeout_ends_it() -> None:
    server = Server(delay_s=30, slots=[[slot(3, 5)]])
    events = await run(server, stall_timeout_s=0.3)
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.status == "timed_out", end
    assert "no progress on the server for 0.3 s" in end.message
    assert server.post_cancelled and end.elapsed_s < 3


async def test_cancel_closes_the_request() -> None:
    server = Server(delay_s=30, slots=[[slot(1, n)] for n in range(1, 100)])
    async with server.client() as client:
        reply = client.quiet_chat(MSGS)
        reply.read_gap_s = 0.05
        events: list[ChatEvent] = []
        async for event in reply:
            events.append(event)
            if isinstance(event, DecodeProgress):
                reply.cancel()
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.status == "cancelled" and end.text == ""
    assert server.post_cancelled and reply.cancel_requested


@pytest.mark.parametrize(
    ("server", "status", "message"),
    [
        (Server(status=500, answer=b'{"error": {"message": "boom"}}'), "server_error", "boom"),
        (Server(answer=b"\x00garbage"), "bad_stream", "not JSON"),
        (Server(answer=b'{"error": {"message": "ctx full"}}'), "server_error", "ctx full"),
        (Server(answer=b"[1, 2]"), "bad_stream", "not a JSON object"),
        (Server(answer=b'{"choices": []}'), "connection_lost", "no finish reason"),
        (Server(fail=httpx.ReadError("reset")), "connection_lost", "reset"),
        (Server(fail=httpx.ConnectError("refused")), "connection_lost", "cannot connect"),
    ],
)
async def test_failures_become_one_stream_end(server: Server, status: str, message: str) -> None:
    server.delay_s = 0.0
    end = (await run(server))[-1]
    assert isinstance(end, StreamEnd) and end.status == status and message in end.message, end


def test_slot_progress_takes_the_newest_processing_task() -> None:
    slots = [slot(4, 9), slot(9, 2), slot(12, 50, processing=False), {"id": 3}]
    assert slot_progress(parse_slots(slots)) == (12, 2)
    assert slot_progress(parse_slots([slot(1, 3, processing=False)])) is None
    assert slot_progress(parse_slots({"error": "x"})) is None
    assert slot_progress(parse_slots([{"id": 0, "is_processing": True, "id_task": "x"}])) is None


def test_slot_progress_of_sampler_slots() -> None:
    def sample(task: int | None, decoded: int, processing: bool = True) -> SlotSample:
        phase = ServerPhase.GENERATING if processing else ServerPhase.IDLE
        return SlotSample(
            id=0,
            n_ctx=64,
            is_processing=processing,
            phase=phase,
            task_id=task,
            prompt_tokens_processed=12,
            tokens_decoded=decoded,
        )

    assert slot_progress([sample(4, 9), sample(9, 2), sample(12, 50, False)]) == (12, 2)
    assert slot_progress([sample(None, 3), sample(1, 3, False)]) is None
    assert slot_progress([]) is None


async def offer_while(reply: QuietReply, every_s: float, values: list[tuple[int, int]]) -> None:
    for value in values:
        reply.offer(value)
        await asyncio.sleep(every_s)


async def test_offered_progress_replaces_the_poll() -> None:
    """While the owner offers the sampler's /slots reads, the reply asks /slots nothing itself."""
    server = Server(delay_s=0.4, slots=[[slot(7, 1)]])
    async with server.client() as client:
        reply = client.quiet_chat(MSGS, max_tokens=4)
        assert isinstance(reply, QuietReply)
        reply.read_gap_s = 0.1
        feed = asyncio.get_running_loop().create_task(
            offer_while(reply, 0.05, [(12, n) for n in range(1, 30)])
        )
        events = [e async for e in reply]
        feed.cancel()
    assert server.polls == 0 and reply.polls == 0
    progress = [e.n_decoded for e in events if isinstance(e, DecodeProgress)]
    assert progress and progress == sorted(progress) and progress[0] == 1
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.status == "done"


async def test_an_offer_returns_the_count_the_stream_then_yields() -> None:
    """The owner can show an offered count at once (with the rest of the sampler's numbers) and
    know the event when the stream yields it: the same object. Nothing new, or nothing asked
    yet: None."""
    server = Server(delay_s=0.3, slots=[[slot(7, 1)]])
    async with server.client() as client:
        reply = client.quiet_chat(MSGS, max_tokens=4)
        assert isinstance(reply, QuietReply)
        assert reply.offer((12, 3)) is None  # before the request: nothing to count from
        events = aiter(reply)
        first = asyncio.get_running_loop().create_task(anext(events))
        await asyncio.sleep(0.05)  # the request is out
        offered = reply.offer((12, 40))
        assert isinstance(offered, DecodeProgress) and offered.n_decoded == 40
        assert await first is offered
        assert reply.offer((12, 40)) is None  # the same reading again
        assert reply.offer((20, 0)) is None  # a new prompt, nothing decoded yet
        rest = [e async for e in events]
    end = rest[-1]
    assert isinstance(end, StreamEnd) and end.status == "done", end


async def test_the_reply_polls_again_when_offers_stop() -> None:
    """Offers that stop (the sampler paused, the screen gone) leave the reply to poll, and its
    stall watchdog still ends a reply whose progress stands still."""
    server = Server(delay_s=30, slots=[[slot(3, 5)]])
    async with server.client(stall_timeout_s=0.4) as client:
        reply = client.quiet_chat(MSGS)
        assert isinstance(reply, QuietReply)
        reply.read_gap_s = 0.05
        reply.offer((12, 5))
        events = [e async for e in reply]
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.status == "timed_out", end
    assert reply.polls > 0  # (the server also saw the check that the slot is idle after it)


def test_answer_chunk_moves_message_to_delta() -> None:
    chunk = answer_chunk(ANSWER)
    assert isinstance(chunk, dict)
    assert chunk["choices"][0]["delta"]["content"] == "def f():\x1b[31m"
    assert chunk["usage"] == ANSWER["usage"]


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
