"""Stream faults: the server dies mid-reply, never generates, or sends truncated or garbage SSE.

Each reply goes through the same path as the chat pane: prompt saved first, reply begun, text
saved while it streams, finished with the stream's end; what survives is read back from the store.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx

from coder_tui.core.chat.client import ChatClient, Delta, StreamEnd
from coder_tui.core.chat.events import reply_end_notice
from coder_tui.core.server.events import Exited
from coder_tui.core.server.ports import free_port
from coder_tui.core.store.history import HistoryStore, StoredMessage, status_for_end
from faults.conftest import Env, Fault
from faults.helpers import manager, profile

PROMPT = "explain the bug"


async def _chat(
    store: HistoryStore,
    client: ChatClient,
    *,
    on_delta: object = None,
) -> tuple[StreamEnd, list[StoredMessage]]:
    conv = store.new_conversation()
    store.add_user_message(conv.id, PROMPT)
    msg_id = store.begin_reply(conv.id, "p", "model.gguf")
    parts: list[str] = []
    end: StreamEnd | None = None
    async for event in client.stream_chat([{"role": "user", "content": PROMPT}]):
        if isinstance(event, Delta):
            parts.append(event.text)
            store.update_reply(msg_id, "".join(parts))
            if callable(on_delta):
                on_delta(len(parts))
        elif isinstance(event, StreamEnd):
            end = event
    assert end is not None
    store.finish_reply(msg_id, end.text, status_for_end(end.status), error=end.message or None)
    return end, store.messages(conv.id)


async def test_server_killed_mid_stream(fault: Fault, env: Env, tmp_path: Path) -> None:
    mgr = manager(env.binary, free_port(), tmp_path)
    exits: list[Exited] = []
    mgr.add_listener(lambda e: exits.append(e) if isinstance(e, Exited) else None)
    ready = await mgr.start(profile(env.model, FAKE_TOKENS="3000", FAKE_TOKEN_DELAY_S="0.005"))

    def kill_at(n: int) -> None:
        if n == 30:
            os.kill(ready.pid, signal.SIGKILL)

    try:
        with HistoryStore(env.db) as store:
            async with ChatClient(mgr.url, stall_timeout_s=10) as client:
                end, stored = await _chat(store, client, on_delta=kill_at)
        for _ in range(100):  # the watcher reports the crash (bounded: 5 s)
            if exits:
                break
            await asyncio.sleep(0.05)
    finally:
        await mgr.stop()
    assert end.status == "connection_lost" and len(end.text) > 0
    assert stored[-1].status == "interrupted" and stored[-1].content == end.text
    assert f"llama-server {exits[0].reason}" == (
        "llama-server was killed by SIGKILL (possibly the kernel's out-of-memory killer)"
    )
    fault.no_orphans([ready.pid], env.model)
    fault.nothing_lost(stored, prompts=[PROMPT], replies=[end.text])
    fault.says(
        reply_end_notice(end),
        "reply cut off: the server closed the connection before the reply finished; "
        "the text so far is kept",
    )


async def test_server_never_generates(fault: Fault, env: Env, tmp_path: Path) -> None:
    """/health says 200 but no token ever comes (a CUDA-OOM symptom): the stall watchdog ends
    the reply as hung and the notice offers a restart."""
    mgr = manager(env.binary, free_port(), tmp_path)
    ready = await mgr.start(profile(env.model, "never_generate"))
    try:
        with HistoryStore(env.db) as store:
            async with ChatClient(mgr.url, stall_timeout_s=1.0) as client:
                end, stored = await _chat(store, client)
    finally:
        await mgr.stop()
    assert end.status == "timed_out" and stored[-1].status == status_for_end("timed_out")
    fault.no_orphans([ready.pid], env.model)
    fault.nothing_lost(stored, prompts=[PROMPT], replies=[""])
    fault.says(
        reply_end_notice(end),
        "reply hung (no data from the server for 1 s); llama-server may be stuck, a CUDA "
        "out-of-memory symptom: restart the server to recover",
    )


def _mock(body: bytes) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/slots":
            return httpx.Response(404)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    return httpx.MockTransport(handler)


HELLO = b'data: {"choices":[{"index":0,"delta":{"content":"hello "}}]}\n\n'


async def _mock_chat(env: Env, body: bytes) -> tuple[StreamEnd, list[StoredMessage]]:
    with HistoryStore(env.db) as store:
        async with ChatClient("http://127.0.0.1:9", transport=_mock(body)) as client:
            return await _chat(store, client)


async def test_garbage_sse(fault: Fault, env: Env) -> None:
    end, stored = await _mock_chat(env, HELLO + b"data: {not json\n\n")
    assert end.status == "bad_stream" and end.text == "hello "
    fault.no_orphans([], env.model)
    fault.nothing_lost(stored, prompts=[PROMPT], replies=["hello "])
    fault.says(
        reply_end_notice(end),
        "reply ended: the server sent a broken stream (the server sent data that is not JSON: "
        "'{not json'); the text so far is kept",
    )


async def test_truncated_sse(fault: Fault, env: Env) -> None:
    end, stored = await _mock_chat(env, HELLO + b'data: {"choices":[{"ind')
    assert end.status == "connection_lost" and end.text == "hello "
    assert stored[-1].status == "interrupted"
    fault.no_orphans([], env.model)
    fault.nothing_lost(stored, prompts=[PROMPT], replies=["hello "])
    fault.says(
        reply_end_notice(end),
        "reply cut off: the server closed the connection before the reply finished; "
        "the text so far is kept",
    )
