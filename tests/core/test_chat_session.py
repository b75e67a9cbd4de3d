"""One chat turn (``core/chat/session.py``) against scripted servers: the events and their order,
what is stored and when, the quiet/streamed choice, pacing, cancel, and a turn closed early.

The scripted transports stand in for llama-server to make each case happen on cue; a whole turn
against the real server, with Textual not importable, is
``tests/integration/test_chat_session_real.py``.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import aclosing
from pathlib import Path
from typing import Any

import httpx
import pytest

import coder_tui.core.chat.session as session
from coder_tui.core.chat.events import DecodeProgress
from coder_tui.core.chat.pacing import BusyPace
from coder_tui.core.chat.session import (
    ChatTurn,
    PaceChanged,
    PromptSaved,
    ReplyStarted,
    ReplyText,
    TurnEnded,
    TurnEvent,
)
from coder_tui.core.config.schema import ChatSettings, Profile
from coder_tui.core.metrics.types import ServerPhase, SlotSample
from coder_tui.core.store.history import HistoryStore
from coder_tui.core.store.schema import DecodeRun

URL = "http://127.0.0.1:8080"
TIMINGS = {
    "prompt_n": 12,
    "prompt_ms": 30.0,
    "prompt_per_second": 400.0,
    "predicted_n": 20,
    "predicted_ms": 100.0,
    "predicted_per_second": 200.0,
}


def sse(obj: object) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def delta(content: str | None = None, reasoning: str | None = None) -> bytes:
    d: dict[str, Any] = {}
    if content is not None:
        d["content"] = content
    if reasoning is not None:
        d["reasoning_content"] = reasoning
    return sse({"choices": [{"index": 0, "delta": d, "finish_reason": None}]})


def tail() -> list[bytes]:
    return [
        sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        sse({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 20}}),
        sse({"choices": [], "timings": TIMINGS}),
        b"data: [DONE]\n\n",
    ]


class Body(httpx.AsyncByteStream):
    """A streamed body: bytes are sent, floats are pauses."""

    def __init__(self, steps: list[bytes | float]) -> None:
        self.steps = steps

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        for step in self.steps:
            if isinstance(step, float):
                await asyncio.sleep(step)
            else:
                yield step


class Server:
    """A scripted llama-server: streams ``steps`` or answers whole, ``/slots`` says idle."""

    def __init__(self, steps: list[bytes | float] | None = None, status: int = 200) -> None:
        default: list[bytes | float] = [delta("Hel"), delta("lo"), *tail()]
        self.steps = steps if steps is not None else default
        self.status = status
        self.bodies: list[dict[str, Any]] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/slots":
            return httpx.Response(200, json=[{"id": 0, "is_processing": False}])
        body = json.loads(request.content)
        self.bodies.append(body)
        if self.status != 200:
            return httpx.Response(self.status, json={"error": {"message": "no slot"}})
        if body["stream"]:
            headers = {"content-type": "text/event-stream"}
            return httpx.Response(200, headers=headers, stream=Body(self.steps))
        await asyncio.sleep(0.2)
        answer = {
            "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"content": "whole reply"}}
            ],
            "timings": TIMINGS,
        }
        return httpx.Response(200, json=answer)


class Cores:
    """``IdleCores`` with a fixed number of idle cores and a window always long enough."""

    def __init__(self, idle: float) -> None:
        self.idle = idle

    def elapsed_s(self) -> float:
        return 1.0

    def sample(self) -> float:
        return self.idle


def profile(tmp_path: Path, system_prompt: str | None = None) -> Profile:
    return Profile(name="q4", model=tmp_path / "Demo-Q4.gguf", system_prompt=system_prompt)


def turn(
    store: HistoryStore,
    server: Server,
    tmp_path: Path,
    *,
    prompt: str | None = "hi",
    chat: ChatSettings | None = None,
    idle_cores: float = 4.0,
    system_prompt: str | None = None,
) -> ChatTurn:
    conv = store.last_conversation() if prompt is None else None
    return ChatTurn(
        store,
        chat or ChatSettings(system_prompt="be brief"),
        server_url=URL,
        profile=profile(tmp_path, system_prompt),
        conversation=conv,
        prompt=prompt,
        pace=BusyPace(0.5, idle=Cores(idle_cores)),  # type: ignore[arg-type]
        transport=httpx.MockTransport(server),
    )


async def events_of(chat_turn: ChatTurn) -> list[TurnEvent]:
    async with aclosing(chat_turn.events()) as events:
        return [e async for e in events]


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with HistoryStore(tmp_path / "h.sqlite3") as s:
        yield s


async def test_a_streamed_turn_saves_the_prompt_and_the_reply(
    store: HistoryStore, tmp_path: Path
) -> None:
    server = Server([delta(reasoning="hm"), delta("Hel"), delta("lo"), *tail()])
    events = await events_of(turn(store, server, tmp_path))
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "PromptSaved",
        "ReplyStarted",
        "PaceChanged",
        "ReplyText",
        "ReplyText",
        "TurnEnded",
    ]
    saved, started, ended = events[0], events[1], events[-1]
    assert isinstance(saved, PromptSaved) and saved.message.content == "hi"
    assert saved.conversation.system_prompt == "be brief"  # the [chat] one: the profile has none
    assert isinstance(started, ReplyStarted) and started.who == "Demo-Q4.gguf" and not started.quiet
    assert [e.text for e in events if isinstance(e, ReplyText)] == ["Hel", "lo"]  # no reasoning
    assert server.bodies[0]["stream"] is True
    assert server.bodies[0]["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    assert isinstance(ended, TurnEnded) and ended.status == "complete"
    assert not ended.quiet and not ended.paced
    stored = store.messages(saved.conversation.id)
    assert [(m.role, m.content, m.status) for m in stored] == [
        ("user", "hi", "complete"),
        ("assistant", "Hello", "complete"),
    ]
    reply = stored[-1]
    assert ended.message == reply and reply.id == started.message_id
    assert (reply.profile, reply.model) == ("q4", "Demo-Q4.gguf")
    assert reply.completion_tokens == 20 and reply.predicted_per_second == 200.0
    assert reply.finish_reason == "stop" and reply.ttft_s is not None
    assert store.last_decode("q4", "Demo-Q4.gguf") == DecodeRun(200.0, False, False)


async def test_the_profiles_system_prompt_wins(store: HistoryStore, tmp_path: Path) -> None:
    server = Server()
    events = await events_of(turn(store, server, tmp_path, system_prompt="be a profile"))
    assert isinstance(events[0], PromptSaved)
    assert events[0].conversation.system_prompt == "be a profile"


async def test_the_reply_is_saved_while_it_streams(
    store: HistoryStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session, "SAVE_EVERY_S", 0.0)
    server = Server([delta("a"), delta("b"), delta("c"), *tail()])
    seen: list[tuple[str, str]] = []
    chat_turn = turn(store, server, tmp_path)
    msg_id = 0
    async with aclosing(chat_turn.events()) as events:
        async for event in events:
            if isinstance(event, ReplyStarted):
                msg_id = event.message_id
            if isinstance(event, ReplyText | TurnEnded):
                stored = store.message(msg_id)
                assert stored is not None
                seen.append((stored.status, stored.content))
    # Each text is saved once it is handed over (so a crash keeps what was shown).
    assert seen == [("streaming", ""), ("streaming", "a"), ("streaming", "ab"), ("complete", "abc")]


async def test_a_retry_answers_the_last_prompt_again(store: HistoryStore, tmp_path: Path) -> None:
    await events_of(turn(store, Server(), tmp_path))
    server = Server([delta("again"), *tail()])
    events = await events_of(turn(store, server, tmp_path, prompt=None))
    assert not any(isinstance(e, PromptSaved) for e in events)
    assert [m["role"] for m in server.bodies[0]["messages"]] == ["system", "user"]
    conv = store.last_conversation()
    assert conv is not None
    assert [m.content for m in store.messages(conv.id)] == ["hi", "Hello", "again"]
    with pytest.raises(ValueError, match="prompt or a conversation"):
        ChatTurn(
            store,
            ChatSettings(),
            server_url=URL,
            profile=None,
            conversation=None,
            prompt=None,
            pace=BusyPace(0.0),
        )


async def test_cancel_keeps_the_text_so_far(store: HistoryStore, tmp_path: Path) -> None:
    server = Server([delta("first"), 5.0, delta("never"), *tail()])
    chat_turn = turn(store, server, tmp_path)
    events: list[TurnEvent] = []
    async with aclosing(chat_turn.events()) as stream:
        async for event in stream:
            events.append(event)
            if isinstance(event, ReplyText):
                chat_turn.cancel()
    ended = events[-1]
    assert isinstance(ended, TurnEnded) and ended.status == "cancelled"
    assert ended.end.server_still_generating is False  # /slots said idle
    assert ended.message is not None and ended.message.content == "first"
    assert store.last_decode("q4", "Demo-Q4.gguf") is None  # a cancelled reply steers nothing


async def test_a_turn_closed_early_is_stored_interrupted(
    store: HistoryStore, tmp_path: Path
) -> None:
    server = Server([delta("part"), 5.0, *tail()])
    chat_turn = turn(store, server, tmp_path)
    msg_id = 0
    async with aclosing(chat_turn.events()) as events:
        async for event in events:
            if isinstance(event, ReplyStarted):
                msg_id = event.message_id
            if isinstance(event, ReplyText):
                break  # the app closing: the generator is closed at this event
    stored = store.message(msg_id)
    assert stored is not None and stored.status == "interrupted" and stored.content == "part"


async def test_a_server_error_is_stored_with_its_message(
    store: HistoryStore, tmp_path: Path
) -> None:
    events = await events_of(turn(store, Server(status=503), tmp_path))
    ended = events[-1]
    assert isinstance(ended, TurnEnded) and ended.status == "error"
    assert ended.message is not None and "no slot" in (ended.message.error or "")
    assert ended.end.status == "server_error"


async def test_no_idle_core_paces_the_reply_and_is_recorded(
    store: HistoryStore, tmp_path: Path
) -> None:
    server = Server()
    events = await events_of(turn(store, server, tmp_path, idle_cores=0.0))
    paces = [e for e in events if isinstance(e, PaceChanged)]
    assert paces == [PaceChanged(0.5, 0.5, True)]  # read and drawn every busy_refresh_s
    ended = events[-1]
    assert isinstance(ended, TurnEnded) and ended.paced and ended.busy_interval_s == 0.5
    assert store.last_decode("q4", "Demo-Q4.gguf") == DecodeRun(200.0, True, False)


async def test_a_fast_busy_last_reply_makes_this_one_quiet(
    store: HistoryStore, tmp_path: Path
) -> None:
    store.record_decode("q4", "Demo-Q4.gguf", DecodeRun(330.0, True))
    chat = ChatSettings(quiet_above_tps=100.0)
    server = Server()
    chat_turn = turn(store, server, tmp_path, chat=chat, idle_cores=0.0)
    slot = SlotSample(
        id=0,
        n_ctx=4096,
        is_processing=True,
        phase=ServerPhase.GENERATING,
        task_id=3,
        prompt_tokens_processed=12,
        tokens_decoded=7,
    )
    offered: list[DecodeProgress | None] = []
    events: list[TurnEvent] = []
    async with aclosing(chat_turn.events()) as stream:
        async for event in stream:
            events.append(event)
            if isinstance(event, ReplyStarted):
                # Offers come from the metrics sampler, between the turn's events, once the
                # request is out (the server answers after 0.2 s).
                loop = asyncio.get_running_loop()
                loop.call_later(0.05, lambda: offered.append(chat_turn.offer_slots([])))
                loop.call_later(0.1, lambda: offered.append(chat_turn.offer_slots([slot])))
    assert server.bodies[0]["stream"] is False
    started = next(e for e in events if isinstance(e, ReplyStarted))
    assert started.quiet
    assert offered[0] is None  # nothing processing: nothing to show
    assert offered[1] is not None and offered[1].n_decoded == 7
    # Shown by whoever offered it: the turn does not yield the same count again.
    assert not any(isinstance(e, DecodeProgress) for e in events)
    assert not any(isinstance(e, PaceChanged) for e in events)  # nothing is drawn meanwhile
    assert [e.text for e in events if isinstance(e, ReplyText)] == ["whole reply"]
    ended = events[-1]
    assert isinstance(ended, TurnEnded) and ended.quiet and ended.status == "complete"
    assert store.last_decode("q4", "Demo-Q4.gguf") == DecodeRun(200.0, True, True)


async def test_a_streamed_turn_takes_no_offers(store: HistoryStore, tmp_path: Path) -> None:
    chat_turn = turn(store, Server(), tmp_path)
    async with aclosing(chat_turn.events()) as events:
        async for event in events:
            if isinstance(event, ReplyStarted):
                assert chat_turn.offer_slots([]) is None
