"""The chat pane against the real llama-server: send and stream, cancel, server killed mid-reply."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

import coder_tui.core.chat.quiet_reply as quiet_reply
import coder_tui.core.chat.session as session
import coder_tui.ui.widgets.chat_turn as chat_turn
from coder_tui.core.config.identity import profile_identity
from coder_tui.core.config.loader import Config
from coder_tui.core.server.events import ServerState
from coder_tui.core.store.history import HistoryStore
from coder_tui.core.store.schema import DecodeOwner
from coder_tui.ui.app import CoderApp
from coder_tui.ui.screens.main import MainScreen
from coder_tui.ui.widgets.message import MessageView
from coder_tui.ui.widgets.prompt import PromptInput
from coder_tui.ui.widgets.server_bar import ServerBar

from .util import until


async def _ready(app: CoderApp) -> MainScreen:
    await until(lambda: app.main is not None and app.main.server_ready)
    assert isinstance(app.screen, MainScreen)
    return app.screen


async def test_send_stream_and_store(demo_config: Config, tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        app = CoderApp(demo_config, store=store)
        async with app.run_test(size=(120, 40)) as pilot:
            main = await _ready(app)
            await pilot.press(*"write a function", "enter")
            await until(lambda: len(main.query(MessageView)) == 2)
            await until(
                lambda: (
                    not main.generating
                    and store.messages(main.conversation.id)[-1].status != "streaming"
                )
            )  # type: ignore[union-attr]
            msgs = store.messages(main.conversation.id)  # type: ignore[union-attr]
            assert [m.role for m in msgs] == ["user", "assistant"]
            reply = msgs[-1]
            assert reply.status == "complete" and reply.content
            assert reply.profile == "q4_k_m" and reply.predicted_per_second
            assert reply.completion_tokens and reply.ttft_s is not None
            stats = str(main.query(MessageView).last().query_one(".stats").render())
            assert "q4_k_m" in stats and "tok/s" in stats and "complete" in stats
            assert isinstance(app.focused, PromptInput)


async def test_cancel_keeps_partial_reply(demo_config: Config, tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        app = CoderApp(demo_config, store=store)
        async with app.run_test(size=(120, 40)) as pilot:
            main = await _ready(app)
            main.request_extra = {"ignore_eos": True, "max_tokens": 4000}
            # The small demo model writes ~2,000 tokens/s: act as soon as the reply streams.
            await pilot.press(*"long")
            prompt = main.query_one(PromptInput)
            prompt.post_message(PromptInput.Submitted(prompt, "long"))
            await until(lambda: main.generating, 10)
            # The reply's own text (the prompt's view is there first, with "long").
            await until(
                lambda: (
                    len(main.query(MessageView)) == 2
                    and bool(main.query(MessageView).last().body.source)
                ),
                10,
            )
            await pilot.press("escape")
            await until(lambda: not main.generating)
            reply = store.messages(main.conversation.id)[-1]  # type: ignore[union-attr]
            assert reply.status == "cancelled"
            assert reply.content  # the words that arrived are kept
            view = main.query(MessageView).last()
            assert view.has_class("cancelled")
            stats = str(view.query_one(".stats").render())
            assert stats.count("cancelled") == 1, stats  # not "cancelled · cancelled"


async def test_server_killed_mid_reply_is_stored_interrupted(
    demo_config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        app = CoderApp(demo_config, store=store)
        async with app.run_test(size=(120, 40)) as pilot:
            main = await _ready(app)
            main.request_extra = {"ignore_eos": True, "max_tokens": 4000}
            # Kill the server the moment the streaming reply is first saved, with a save at every
            # delta: a kill before the first token would leave nothing to check, and a later one
            # races the tiny model, which writes 4,000 tokens into the socket in under two
            # seconds, faster than the app reads them: the reply would complete from the buffer.
            monkeypatch.setattr(session, "SAVE_EVERY_S", 0.0)
            save = store.update_reply

            def save_then_kill(msg_id: int, text: str) -> None:
                save(msg_id, text)
                if app.manager is not None and app.manager.pid is not None and text:
                    os.killpg(app.manager.pid, signal.SIGKILL)

            store.update_reply = save_then_kill  # type: ignore[method-assign]
            prompt = main.query_one(PromptInput)
            prompt.post_message(PromptInput.Submitted(prompt, "long"))

            def reply_ended() -> bool:
                # Not "generating, then not": the kill can end the reply between two polls.
                conv = main.conversation
                msgs = store.messages(conv.id) if conv is not None else []
                return bool(msgs) and msgs[-1].role == "assistant" and not main.generating

            await until(reply_ended)
            reply = store.messages(main.conversation.id)[-1]  # type: ignore[union-attr]
            assert reply.status == "interrupted", reply
            assert reply.content
            await until(lambda: main.query_one(ServerBar).serving.state is ServerState.CRASHED)
            # The UI is still usable: the prompt takes text, and a restart brings the server back.
            await pilot.press(*"again")
            assert main.query_one(PromptInput).text == "again"
            await pilot.press("f2")
            await until(lambda: main.server_ready)


class _NoIdleCore:
    """``IdleCores`` of a machine whose cores are all busy (llama-server's threads on every one)."""

    def elapsed_s(self) -> float:
        return 1.0

    def sample(self) -> float:
        return 0.0


async def test_reply_is_paced_while_no_core_is_idle(
    demo_config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With every core busy, the reply is read and drawn once per ``busy_refresh_s``, the prompt's
    cursor stops blinking, nothing of the reply is lost, and its footer says it was paced."""
    from coder_tui.core.chat.pacing import BusyPace
    from coder_tui.core.chat.turn_events import PaceChanged

    with HistoryStore(tmp_path / "h.sqlite3") as store:
        # No metrics: the machine's own load (another test, a build) would hold the cursor still
        # through the App's samples, whatever the reply did.
        app = CoderApp(demo_config, store=store, sample_metrics=False)
        async with app.run_test(size=(120, 40)) as pilot:
            main = await _ready(app)
            main.pace = BusyPace(0.3, idle=_NoIdleCore())  # type: ignore[arg-type]
            main.request_extra = {"ignore_eos": True, "max_tokens": 200}
            seen: list[tuple[float, float, bool]] = []
            show = chat_turn.TurnRenderer.show

            async def spy(renderer, event):  # type: ignore[no-untyped-def]
                await show(renderer, event)
                if isinstance(event, PaceChanged):
                    blink = main.query_one(PromptInput).cursor_blink
                    seen.append((renderer.coalescer.interval_s, event.read_gap_s, blink))

            monkeypatch.setattr(chat_turn.TurnRenderer, "show", spy)
            await pilot.press(*"write a function", "enter")
            await until(lambda: main.generating, 10)
            await until(lambda: not main.generating, 60)
            reply = store.messages(main.conversation.id)[-1]  # type: ignore[union-attr]
            assert reply.status == "complete" and reply.completion_tokens == 200
            view = main.query(MessageView).last()
            assert view.body.source == reply.content  # every token drawn in the end
            stats = str(view.query_one(".stats").render())
            assert "drawn every 0.3 s (no idle CPU core)" in stats
            assert seen and seen[-1] == (0.3, 0.3, False)
            assert main.query_one(PromptInput).cursor_blink  # blinking again after the reply


async def test_a_fast_reply_with_no_idle_core_makes_the_next_one_quiet(
    demo_config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a reply that decoded fast with every core busy, the next one is shown whole: its
    stats line counts tokens meanwhile, the whole text arrives and is stored, the footer says so;
    once a reply runs with an idle core, the next one streams again."""
    from dataclasses import replace

    from coder_tui.core.chat.pacing import BusyPace

    config = replace(demo_config, chat=replace(demo_config.chat, quiet_above_tps=1.0))
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        app = CoderApp(config, store=store)
        async with app.run_test(size=(120, 40)) as pilot:
            main = await _ready(app)

            async def replies(n: int) -> None:
                conv = main.conversation
                assert conv is not None
                await until(lambda: len(store.messages(conv.id)) == n, 10)
                await until(lambda: not main.generating, 60)

            main.pace = BusyPace(0.05, idle=_NoIdleCore())  # type: ignore[arg-type]
            monkeypatch.setattr(quiet_reply, "READ_GAP_S", 0.05)  # the tiny model is fast
            main.request_extra = {"ignore_eos": True, "max_tokens": 100}
            await pilot.press(*"first", "enter")
            await until(lambda: main.conversation is not None, 10)
            await replies(2)
            mine = DecodeOwner(profile_identity(config.profile("q4_k_m")), main.server_url)
            first = store.last_decode(mine)
            assert first is not None and first.cpu_saturated and not first.quiet
            assert first.tokens_per_second > 1.0

            seen: list[str] = []
            show = chat_turn.quiet_progress

            blinking: list[bool] = []

            def spy(event):  # type: ignore[no-untyped-def]
                seen.append(show(event))
                blinking.append(main.query_one(PromptInput).cursor_blink)
                return seen[-1]

            chat_turn.quiet_progress = spy  # type: ignore[assignment]
            main.request_extra = {"ignore_eos": True, "max_tokens": 1000}
            try:
                await pilot.press(*"second", "enter")
                await replies(4)
            finally:
                chat_turn.quiet_progress = show  # type: ignore[assignment]
            reply = store.messages(main.conversation.id)[-1]  # type: ignore[union-attr]
            assert reply.status == "complete" and reply.completion_tokens == 1000
            # Its line is laid out with the reply, before the request: the counts then repaint
            # it in place; they come from the stream, read once a gap.
            assert seen[0].startswith("0 tokens after 0 s")
            assert any(int(line.split()[0]) > 0 for line in seen[1:]), seen
            # Asked whole because no core was idle: the cursor does not blink from the start.
            assert len(blinking) >= 2 and not any(blinking[1:]), blinking
            view = main.query(MessageView).last()
            assert view.body.source == reply.content and reply.content
            assert "shown whole" in str(view.query_one(".stats").render())
            second = store.last_decode(mine)
            assert second is not None and second.quiet and second.cpu_saturated

            # A quiet reply done before its first poll still says how busy the cores were.
            main.request_extra = {"ignore_eos": True, "max_tokens": 20}
            await pilot.press(*"short", "enter")
            await replies(6)
            short = store.last_decode(mine)
            assert short is not None and short.quiet and short.cpu_saturated

            main.pace = BusyPace(0.05, enter_idle=-1.0, leave_idle=-1.0)  # a core always idle
            main.request_extra = {"ignore_eos": True, "max_tokens": 100}
            await pilot.press(*"third", "enter")
            await replies(8)
            third = store.last_decode(mine)
            assert third is not None and third.quiet and not third.cpu_saturated
            await pilot.press(*"fourth", "enter")
            await replies(10)
            fourth = store.last_decode(mine)
            assert fourth is not None and not fourth.quiet
