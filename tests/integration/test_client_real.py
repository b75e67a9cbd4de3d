"""The chat client against the real llama-server serving the demo model: events, cancel, a killed server."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from coder_tui.core.chat.client import (
    ChatClient,
    ChatEvent,
    DecodeProgress,
    Delta,
    Finish,
    StreamEnd,
    Timings,
    Usage,
    check_slots_idle,
)
from coder_tui.core.config.loader import Config
from coder_tui.core.server.process import ServerManager
from coder_tui.core.store.history import HistoryStore, status_for_end

MSGS = [{"role": "user", "content": "Write a Python function that adds two numbers."}]


async def test_stream_event_sequence_and_timings(demo_config: Config, tmp_path: Path) -> None:
    mgr = ServerManager(demo_config.server, log_dir=tmp_path)
    try:
        await mgr.start(demo_config.profile("q4_k_m"))
        async with ChatClient(mgr.url) as client:
            events = [
                e async for e in client.stream_chat(MSGS, max_tokens=32, temperature=0, seed=1)
            ]
    finally:
        await mgr.stop()
    end = events[-1]
    assert isinstance(end, StreamEnd), events
    assert end.status == "done", end.message
    assert sum(isinstance(e, StreamEnd) for e in events) == 1
    deltas = [e for e in events if isinstance(e, Delta)]
    assert deltas and end.text == "".join(d.text for d in deltas if not d.reasoning)
    finishes = [e for e in events if isinstance(e, Finish)]
    assert len(finishes) == 1 and finishes[0].reason in {"stop", "length"}
    timings = [e for e in events if isinstance(e, Timings)]
    assert timings and end.timings == timings[-1]
    assert end.timings.predicted_n > 0 and end.timings.predicted_per_second > 0
    assert end.timings.prompt_n > 0
    usage = [e for e in events if isinstance(e, Usage)]
    assert usage and usage[-1].completion_tokens == end.timings.predicted_n
    # finish comes after the last delta, and the stats after the finish
    index = {id(e): i for i, e in enumerate(events)}
    assert index[id(deltas[-1])] < index[id(finishes[0])] < index[id(timings[-1])]
    assert end.ttft_s is not None and 0 < end.ttft_s <= end.elapsed_s
    assert end.first_token_at is not None and end.finish_reason == finishes[0].reason


async def test_read_gap_keeps_the_whole_reply_from_the_real_server(
    demo_config: Config, tmp_path: Path
) -> None:
    """Reads spaced by a gap (the chat pane's pace while no core is idle) lose nothing: every
    token, the finish and the timings arrive, and the reply ends at most about a gap late."""
    mgr = ServerManager(demo_config.server, log_dir=tmp_path)
    try:
        await mgr.start(demo_config.profile("q4_k_m"))
        async with ChatClient(mgr.url) as client:
            stream = client.stream_chat(MSGS, max_tokens=48, extra={"ignore_eos": True})
            events: list[ChatEvent] = []
            async for event in stream:
                events.append(event)
                stream.read_gap_s = 0.2
    finally:
        await mgr.stop()
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.status == "done", end
    assert end.timings is not None and end.timings.predicted_n == 48
    deltas = [e for e in events if isinstance(e, Delta)]
    assert len(deltas) == 48 and end.text == "".join(d.text for d in deltas)
    server_s = (end.timings.prompt_ms + end.timings.predicted_ms) / 1000
    assert end.elapsed_s < server_s + 0.2 + 1.0


async def test_cancel_after_first_delta_leaves_slots_idle(
    demo_config: Config, tmp_path: Path
) -> None:
    mgr = ServerManager(demo_config.server, log_dir=tmp_path)
    try:
        await mgr.start(demo_config.profile("q4_k_m"))
        async with ChatClient(mgr.url) as client:
            stream = client.stream_chat(MSGS, max_tokens=4000, extra={"ignore_eos": True})
            events: list[ChatEvent] = []
            cancelled_at = 0.0
            async for event in stream:
                events.append(event)
                if isinstance(event, Delta) and not cancelled_at:
                    cancelled_at = time.monotonic()
                    stream.cancel()
            end = events[-1]
            assert isinstance(end, StreamEnd)
            assert end.status == "cancelled", end.message
            assert end.server_still_generating is False  # /slots showed it idle...
            assert time.monotonic() - cancelled_at < 0.5  # ...within 0.5 s of Esc
            assert await check_slots_idle(mgr.url, wait_s=0.0) is True
            # the server still serves the next request
            again = [e async for e in client.stream_chat(MSGS, max_tokens=4)]
            assert isinstance(again[-1], StreamEnd) and again[-1].status == "done"
    finally:
        await mgr.stop()


async def test_server_killed_mid_stream(demo_config: Config, tmp_path: Path) -> None:
    mgr = ServerManager(demo_config.server, log_dir=tmp_path)
    store = HistoryStore(tmp_path / "history.sqlite3")
    try:
        await mgr.start(demo_config.profile("q4_k_m"))
        conv = store.new_conversation()
        store.add_user_message(conv.id, MSGS[0]["content"], profile="q4_k_m")
        reply = store.begin_reply(conv.id, "q4_k_m", "demo")
        async with ChatClient(mgr.url, stall_timeout_s=10) as client:
            events: list[ChatEvent] = []
            killed = False
            async for event in client.stream_chat(
                MSGS, max_tokens=100_000, extra={"ignore_eos": True}
            ):
                events.append(event)
                if isinstance(event, Delta) and not killed:
                    store.update_reply(reply, event.text)
                    assert mgr.pid is not None
                    os.killpg(mgr.pid, signal.SIGKILL)
                    killed = True
        end = events[-1]
        assert isinstance(end, StreamEnd)
        assert end.status == "connection_lost", (end.status, end.message)
        assert end.text and end.finish_reason is None
        store.finish_reply(reply, end.text, status_for_end(end.status), error=end.message)
        msg = store.message(reply)
        assert msg is not None and msg.status == "interrupted" and msg.content == end.text
        assert msg.error
    finally:
        store.close()
        await mgr.stop()


async def test_quiet_reply_is_the_streamed_reply_shown_whole(
    demo_config: Config, tmp_path: Path
) -> None:
    """The same request (temperature 0, no prompt cache) shown whole gives the same text, finish
    and token count as streamed; the token count comes from the stream meanwhile."""
    mgr = ServerManager(demo_config.server, log_dir=tmp_path)
    N = 2000
    extra = {"ignore_eos": True, "cache_prompt": False}
    try:
        await mgr.start(demo_config.profile("q4_k_m"))
        async with ChatClient(mgr.url) as client:
            streamed = [
                e async for e in client.stream_chat(MSGS, max_tokens=N, temperature=0, extra=extra)
            ]
            reply = client.quiet_chat(MSGS, max_tokens=N, temperature=0, extra=extra)
            reply.read_gap_s = 0.05
            quiet = [e async for e in reply]
    finally:
        await mgr.stop()
    a, b = streamed[-1], quiet[-1]
    assert isinstance(a, StreamEnd) and isinstance(b, StreamEnd)
    assert a.status == b.status == "done", (a.message, b.message)
    assert b.text == a.text and b.finish_reason == a.finish_reason == "length"
    assert b.timings is not None and b.timings.predicted_n == N
    progress = [e.n_decoded for e in quiet if isinstance(e, DecodeProgress)]
    assert progress and progress == sorted(progress) and progress[-1] <= N
    first_delta = next(i for i, e in enumerate(quiet) if isinstance(e, Delta))
    assert all(not isinstance(e, DecodeProgress) for e in quiet[first_delta:])
    assert b.ttft_s is not None and 0 < b.ttft_s < b.elapsed_s


async def test_quiet_reply_cancel_leaves_slots_idle(demo_config: Config, tmp_path: Path) -> None:
    """Esc on a reply shown whole stops the server within 0.5 s (a reply asked whole, with
    ``stream: false``, went on for 1-3 s: llama-server looks for its closed connection only
    when no result has come for a second)."""
    mgr = ServerManager(demo_config.server, log_dir=tmp_path)
    try:
        await mgr.start(demo_config.profile("q4_k_m"))
        async with ChatClient(mgr.url) as client:
            reply = client.quiet_chat(MSGS, max_tokens=20000, extra={"ignore_eos": True})
            reply.read_gap_s = 0.05
            events: list[ChatEvent] = []
            cancelled_at = 0.0
            async for event in reply:
                events.append(event)
                if isinstance(event, DecodeProgress) and not cancelled_at:
                    cancelled_at = time.monotonic()
                    reply.cancel()
            end = events[-1]
            assert isinstance(end, StreamEnd) and end.status == "cancelled", end.message
            # The end came after /slots showed the slot idle (polled every 0.1 s).
            assert end.server_still_generating is False
            assert time.monotonic() - cancelled_at < 0.5
            assert await check_slots_idle(mgr.url, wait_s=0.0) is True
            assert end.text and end.text == "".join(e.text for e in events if isinstance(e, Delta))
    finally:
        await mgr.stop()
