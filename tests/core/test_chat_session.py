"""One chat turn (``core/chat/session.py``) against scripted servers: the events and their order,
what is stored and when, the quiet/streamed choice, pacing, cancel, and a turn closed early.

The scripted transports stand in for llama-server to make each case happen on cue; a whole turn
against the real server, with Textual not importable, is
``tests/integration/test_chat_session_real.py``.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from contextlib import aclosing
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.fakes.sse_frames import delta, sse

import coder_tui.core.chat.session as session
from coder_tui.core.chat.context import ContextCounter
from coder_tui.core.chat.events import DecodeProgress
from coder_tui.core.chat.pacing import BusyPace
from coder_tui.core.chat.session import ChatTurn
from coder_tui.core.chat.turn_events import (
    ContextFitted,
    PaceChanged,
    PromptRefused,
    PromptSaved,
    ReplyStarted,
    ReplyText,
    TurnEnded,
    TurnEvent,
)
from coder_tui.core.config.identity import profile_identity
from coder_tui.core.config.schema import ChatSettings, Profile
from coder_tui.core.store.history import SCHEMA_VERSION, HistoryStore
from coder_tui.core.store.schema import MIGRATIONS, DecodeOwner, DecodeRun

URL = "http://127.0.0.1:8080"
TIMINGS = {
    "prompt_n": 12,
    "prompt_ms": 30.0,
    "prompt_per_second": 400.0,
    "predicted_n": 20,
    "predicted_ms": 100.0,
    "predicted_per_second": 200.0,
}


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

    def __init__(
        self, steps: list[bytes | float] | None = None, status: int = 200, n_ctx: int = 4096
    ) -> None:
        default: list[bytes | float] = [delta("Hel"), delta("lo"), *tail()]
        self.steps = steps if steps is not None else default
        self.status = status
        self.n_ctx = n_ctx
        self.bodies: list[dict[str, Any]] = []
        self.tokenized = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/slots":
            slot = {"id": 0, "is_processing": False, "n_ctx": self.n_ctx}
            return httpx.Response(200, json=[slot])
        body = json.loads(request.content)
        if request.url.path == "/tokenize":  # one token a word
            self.tokenized += 1
            return httpx.Response(200, json={"tokens": list(range(len(body["content"].split())))})
        self.bodies.append(body)
        if self.status != 200:
            return httpx.Response(self.status, json={"error": {"message": "no slot"}})
        headers = {"content-type": "text/event-stream"}
        return httpx.Response(200, headers=headers, stream=Body(self.steps))


class Cores:
    """``IdleCores`` with a fixed number of idle cores and a window always long enough."""

    def __init__(self, idle: float) -> None:
        self.idle = idle

    def elapsed_s(self) -> float:
        return 1.0

    def sample(self) -> float:
        return self.idle


def profile(
    tmp_path: Path, system_prompt: str | None = None, n_cpu_moe: int | None = None
) -> Profile:
    return Profile(
        name="q4", model=tmp_path / "Demo-Q4.gguf", system_prompt=system_prompt, n_cpu_moe=n_cpu_moe
    )


def q4(tmp_path: Path) -> DecodeOwner:
    """Whose decode runs ``turn``'s replies are: its profile's identity."""
    return DecodeOwner(profile_identity(profile(tmp_path)), URL)


def turn(
    store: HistoryStore,
    server: Server,
    tmp_path: Path,
    *,
    prompt: str | None = "hi",
    chat: ChatSettings | None = None,
    idle_cores: float = 4.0,
    system_prompt: str | None = None,
    n_cpu_moe: int | None = None,
) -> ChatTurn:
    conv = store.last_conversation() if prompt is None else None
    return ChatTurn(
        store,
        chat or ChatSettings(system_prompt="be brief"),
        server_url=URL,
        profile=profile(tmp_path, system_prompt, n_cpu_moe),
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
        "ContextFitted",
        "ReplyStarted",
        "PaceChanged",
        "ReplyText",
        "ReplyText",
        "TurnEnded",
    ]
    saved, started, ended = events[0], events[2], events[-1]
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
    assert store.last_decode(q4(tmp_path)) == DecodeRun(200.0, False, False)


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
    assert store.last_decode(q4(tmp_path)) is None  # a cancelled reply steers nothing


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
    assert store.last_decode(q4(tmp_path)) == DecodeRun(200.0, True, False)


async def test_a_fast_busy_last_reply_makes_this_one_quiet(
    store: HistoryStore, tmp_path: Path
) -> None:
    store.record_decode(q4(tmp_path), DecodeRun(330.0, True))
    chat = ChatSettings(quiet_above_tps=100.0)
    server = Server([delta("whole "), 0.05, delta("reply"), *tail()])
    events = await events_of(turn(store, server, tmp_path, chat=chat, idle_cores=0.0))
    # Streamed by the server (so that Esc stops it), shown whole: counts meanwhile.
    assert server.bodies[0]["stream"] is True
    started = next(e for e in events if isinstance(e, ReplyStarted))
    assert started.quiet
    counts = [e for e in events if isinstance(e, DecodeProgress)]
    assert counts and counts[0].n_decoded == 1
    first_text = next(i for i, e in enumerate(events) if isinstance(e, ReplyText))
    assert all(not isinstance(e, DecodeProgress) for e in events[first_text:])
    assert not any(isinstance(e, PaceChanged) for e in events)  # nothing is drawn meanwhile
    assert [e.text for e in events if isinstance(e, ReplyText)] == ["whole reply"]
    ended = events[-1]
    assert isinstance(ended, TurnEnded) and ended.quiet and ended.status == "complete"
    assert store.last_decode(q4(tmp_path)) == DecodeRun(200.0, True, True)


async def test_another_configs_profile_of_the_same_name_never_makes_a_reply_quiet(
    store: HistoryStore, tmp_path: Path
) -> None:
    """Two configs, each with a ``q4`` profile on the same model file, the first with every
    expert on the GPU, the second with 30 layers' experts in RAM: the first's fast run on a busy
    CPU says nothing about the second's, whose reply streams (and is recorded as its own)."""
    chat = ChatSettings(quiet_above_tps=100.0)
    first = await events_of(turn(store, Server(), tmp_path, chat=chat, idle_cores=0.0))
    assert isinstance(first[-1], TurnEnded) and not first[-1].quiet
    assert store.last_decode(q4(tmp_path)) == DecodeRun(200.0, True, False)  # fast, saturated
    again = await events_of(turn(store, Server(), tmp_path, chat=chat, idle_cores=0.0))
    assert isinstance(again[-1], TurnEnded) and again[-1].quiet  # the same profile: quiet
    other = turn(store, Server(), tmp_path, chat=chat, idle_cores=4.0, n_cpu_moe=30)
    events = await events_of(other)
    started = next(e for e in events if isinstance(e, ReplyStarted))
    assert not started.quiet and started.who == "Demo-Q4.gguf"
    assert isinstance(events[-1], TurnEnded) and not events[-1].quiet
    theirs = DecodeOwner(profile_identity(profile(tmp_path, n_cpu_moe=30)), URL)
    assert theirs != q4(tmp_path)
    assert store.last_decode(theirs) == DecodeRun(200.0, False, False)
    assert store.last_decode(q4(tmp_path)) == DecodeRun(200.0, True, True)  # the first's, kept


async def test_runs_stored_before_identities_are_ignored(tmp_path: Path) -> None:
    """A history written before runs were kept by identity (version 4) opens; its run of ``q4``,
    fast on a busy CPU, was keyed by name, so which flags decoded it is unknown: it steers
    nothing, and the first reply records the profile's own."""
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    for migrate in MIGRATIONS[:4]:
        migrate(db)
    db.execute("PRAGMA user_version = 4")
    db.execute(
        "INSERT INTO decode_runs (key, at, tokens_per_second, cpu_saturated, quiet) "
        "VALUES ('q4\nDemo-Q4.gguf', 1, 330.0, 1, 0)"
    )
    db.close()
    chat = ChatSettings(quiet_above_tps=100.0)
    with HistoryStore(path) as store:
        assert store.last_decode(q4(tmp_path)) is None
        events = await events_of(turn(store, Server(), tmp_path, chat=chat, idle_cores=0.0))
        assert isinstance(events[-1], TurnEnded) and not events[-1].quiet
        assert store.last_decode(q4(tmp_path)) == DecodeRun(200.0, True, False)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


async def test_an_attached_servers_runs_are_kept_by_its_address(
    store: HistoryStore, tmp_path: Path
) -> None:
    """With no profile (a server coder-tui did not start), the run belongs to its address."""
    store.record_decode(DecodeOwner(None, "http://127.0.0.1:9999"), DecodeRun(330.0, True))
    chat = ChatSettings(quiet_above_tps=100.0)
    attached = ChatTurn(
        store,
        chat,
        server_url=URL,
        profile=None,
        conversation=None,
        prompt="hi",
        pace=BusyPace(0.5, idle=Cores(0.0)),  # type: ignore[arg-type]
        transport=httpx.MockTransport(Server()),
    )
    events = await events_of(attached)
    assert isinstance(events[-1], TurnEnded) and not events[-1].quiet  # another address's run
    assert store.last_decode(DecodeOwner(None, URL)) == DecodeRun(200.0, True, False)
    assert store.last_decode(q4(tmp_path)) is None  # no profile's


async def test_a_cancel_is_stored_once_not_as_its_own_error(
    store: HistoryStore, tmp_path: Path
) -> None:
    server = Server([delta("part"), 5.0, *tail()])
    chat_turn = turn(store, server, tmp_path)
    async with aclosing(chat_turn.events()) as stream:
        async for event in stream:
            if isinstance(event, ReplyText):
                chat_turn.cancel()
    conv = store.last_conversation()
    assert conv is not None
    reply = store.messages(conv.id)[-1]
    assert reply.status == "cancelled" and reply.error is None  # not "cancelled · cancelled"


def words(n: int, word: str = "w") -> str:
    return " ".join([word] * n)


async def test_old_turns_are_left_out_of_the_request_not_the_history(
    store: HistoryStore, tmp_path: Path
) -> None:
    # n_ctx 400: a quarter (100) is the reply's, 300 for the request, 8 a message of overhead.
    await events_of(turn(store, Server(n_ctx=400), tmp_path, prompt=words(120, "old")))
    conv = store.last_conversation()
    assert conv is not None
    second = turn(store, Server(n_ctx=400), tmp_path, prompt=words(120, "older"))
    second.conversation = conv
    await events_of(second)
    assert conv is not None
    server = Server(n_ctx=400)
    follow = ChatTurn(
        store,
        ChatSettings(system_prompt="be brief"),
        server_url=URL,
        profile=profile(tmp_path),
        conversation=conv,
        prompt=words(150, "new"),
        pace=BusyPace(0.5, idle=Cores(4.0)),  # type: ignore[arg-type]
        transport=httpx.MockTransport(server),
    )
    events = await events_of(follow)
    fitted = next(e for e in events if isinstance(e, ContextFitted))
    plan = fitted.plan
    stored = store.messages(conv.id)
    assert len(stored) == 6  # everything is kept in the history
    sent = server.bodies[0]["messages"]
    assert [m["role"] for m in sent] == ["system", "user"]
    assert sent[-1]["content"] == words(150, "new")
    # the new prompt, "Hello" and the second prompt overflow 300: a reply without its prompt goes
    assert plan.left_out == 4 and plan.first_kept_id == stored[4].id
    assert plan.n_ctx == 400 and plan.tokens == 10 + 158
    assert plan.notice is not None and "4 older message(s) left out" in plan.notice
    ended = events[-1]
    assert isinstance(ended, TurnEnded) and ended.status == "complete"
    assert ended.n_ctx == 400 and ended.context_tokens == 12 + 20  # the server's usage


async def test_a_prompt_too_big_for_the_context_is_refused_before_it_is_stored(
    store: HistoryStore, tmp_path: Path
) -> None:
    server = Server(n_ctx=400)
    events = await events_of(turn(store, server, tmp_path, prompt=words(500)))
    assert len(events) == 1 and isinstance(events[0], PromptRefused)
    refusal = events[0].refusal
    assert refusal.tokens == 500 and refusal.n_ctx == 400 and refusal.limit < 300
    assert "500 tokens" in refusal.notice and "(400)" in refusal.notice
    assert events[0].prompt == words(500)
    assert server.bodies == [] and store.last_conversation() is None  # nothing stored or sent


async def test_stored_messages_are_counted_once(store: HistoryStore, tmp_path: Path) -> None:
    counter = ContextCounter()
    server = Server()
    for prompt in ("one", "two"):
        conv = store.last_conversation()
        chat_turn = ChatTurn(
            store,
            ChatSettings(),
            server_url=URL,
            profile=profile(tmp_path),
            conversation=conv,
            prompt=prompt,
            pace=BusyPace(0.5, idle=Cores(4.0)),  # type: ignore[arg-type]
            counter=counter,
            transport=httpx.MockTransport(server),
        )
        await events_of(chat_turn)
    # turn 1: the prompt; turn 2: the prompt and the first reply (the first prompt is known)
    assert server.tokenized == 3
