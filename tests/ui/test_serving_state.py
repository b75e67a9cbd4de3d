"""The one serving state: how server events and swaps change it, and that the App hands it down
(the server bar, the main screen's profile and chat target) with no copies kept elsewhere."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest
from textual.app import App

from coder_tui.core.config.loader import Config, Profile, Remote
from coder_tui.core.metrics.fleet import FleetRow
from coder_tui.core.metrics.types import ServerPhase
from coder_tui.core.server.events import Exited, LogLine, Ready, ServerState, StateChanged
from coder_tui.core.server.swap import SwapPhase, SwapProgress, SwapResult
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui.app import CoderApp
from coder_tui.ui.control.fleet import FleetWatch
from coder_tui.ui.control.profiles import after_swap_event
from coder_tui.ui.messages import ServerFailed, SwapReport
from coder_tui.ui.screens.main import MainScreen
from coder_tui.ui.serving import RemoteChat, ServingState, after_event
from coder_tui.ui.widgets.fleet import LOCAL, FleetTable
from coder_tui.ui.widgets.server_bar import ServerBar
from coder_tui.ui.widgets.server_log import ServerLog

A = Profile(name="a", model=Path("A-Q4_K_M.gguf"))
B = Profile(name="b", model=Path("B-Q8_0.gguf"))
PROFILES = {"a": A, "b": B}


def test_a_state_change_names_the_served_profile() -> None:
    serving = ServingState(profile=A, url="http://127.0.0.1:8084")
    loading_b = after_event(serving, StateChanged(ServerState.LOADING, "b", 0.0), PROFILES)
    assert loading_b.profile is B and loading_b.state is ServerState.LOADING
    assert loading_b.label == "b" and loading_b.url == serving.url
    unnamed = after_event(loading_b, StateChanged(ServerState.READY, None, 0.0), PROFILES)
    assert unnamed.profile is B and unnamed.ready
    unknown = after_event(unnamed, StateChanged(ServerState.STOPPED, "gone", 0.0), PROFILES)
    assert unknown.profile is B and not unknown.ready


def test_ready_clears_the_detail_and_an_unasked_exit_sets_it() -> None:
    failed = ServingState(profile=A, detail="failed to load the model")
    ready = after_event(failed, Ready("a", "http://x", 42, 1.25), PROFILES)
    assert ready.detail == "" and ready.load_time_s == 1.25
    crash = Exited("a", 42, None, 9, expected=False, reason="killed by SIGKILL", last_lines=())
    assert after_event(ready, crash, PROFILES).detail == "killed by SIGKILL"
    asked = replace(crash, expected=True, reason="stopped")
    assert after_event(ready, asked, PROFILES) == ready
    assert after_event(ready, LogLine("hello", "stdout", 0.0), PROFILES) is ready


def test_attached_is_named_so_whatever_profile_was_asked_for() -> None:
    assert ServingState().label is None
    assert ServingState(attached=True).label == "attached"
    assert ServingState(profile=A, attached=True).label == "attached"


def test_a_swap_shows_its_phase_then_its_outcome() -> None:
    serving = ServingState(profile=A, state=ServerState.READY)
    phase = SwapProgress(SwapPhase.RELEASING_VRAM, "a", "b", 0.4)
    during, outcome = after_swap_event(serving, phase, PROFILES)
    assert during.detail == "swap → b: releasing_vram" and outcome is None
    done, outcome = after_swap_event(during, SwapResult(True, "b", "b", "a", total_s=2.5), PROFILES)
    assert done.profile is B and done.detail == ""
    assert outcome is not None and outcome.notice == "now serving b (2.5 s)"
    assert outcome.severity == "information" and outcome.timeout_s is None
    failed = SwapResult(
        False, "b", "a", "a", error="llama-server exited\nwhile loading", log_tail=("oom",)
    )
    back, outcome = after_swap_event(during, failed, PROFILES)
    assert back.profile is A and back.detail == "llama-server exited"
    assert outcome is not None and outcome.severity == "error" and outcome.log_lines == ("oom",)
    same = SwapResult(True, "a", "a", "a", unchanged=True)
    _, outcome = after_swap_event(serving, same, PROFILES)
    assert outcome is not None and "nothing to do" in outcome.notice


def test_a_fleet_row_becomes_the_chat_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOX_KEY", "secret")
    remotes = (Remote("box", "http://box:8084", api_key_env="BOX_KEY"), Remote("off", "http://o"))
    fleet = FleetWatch(cast(App[Any], None), remotes)
    fleet.rows = (FleetRow("box", "http://box:8084", True, ServerPhase.IDLE, 0.0),)
    assert fleet.remote_chat("box") == RemoteChat("box", "http://box:8084", "secret", True)
    assert fleet.remote_chat("off") == RemoteChat("off", "http://o", None, False)  # not polled yet
    assert fleet.remote_chat(LOCAL) is None


def _two_profiles(config: Config) -> Config:
    a = config.profile()
    return replace(config, profiles={a.name: a, "b": replace(a, name="b")})


async def test_the_app_hands_its_serving_state_down(
    offline_config: Config, store: HistoryStore
) -> None:
    app = CoderApp(_two_profiles(offline_config), autostart=False, store=store)
    async with app.run_test(size=(160, 50)) as pilot:
        main = app.screen
        assert isinstance(main, MainScreen)
        bar = main.query_one(ServerBar)
        await pilot.pause()
        assert bar.serving is app.serving and main.serving is app.serving
        assert main.profile is not None and main.profile.name == "q4_k_m"
        assert main.server_url == "http://127.0.0.1:8084" and not main.server_ready
        app.post_message(SwapReport(SwapProgress(SwapPhase.LOADING, "q4_k_m", "b", 1.0)))
        await pilot.pause()
        assert bar.serving.detail == "swap → b: loading"
        app.post_message(SwapReport(SwapResult(True, "b", "b", "q4_k_m", total_s=1.0)))
        await pilot.pause()
        assert main.profile is not None and main.profile.name == "b" and bar.serving.label == "b"
        assert "  b  ● stopped  http://127.0.0.1:8084" in f"  {bar.render()}"
        app.post_message(ServerFailed("port 8084 is taken\nby someone"))
        await pilot.pause()
        await pilot.pause()
        assert bar.serving.detail == "port 8084 is taken"
        assert [str(line.text) for line in main.query_one(ServerLog).lines] == [
            "port 8084 is taken",
            "by someone",
        ]


async def test_chat_with_a_remote_and_back(
    offline_config: Config, store: HistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOX_KEY", "secret")
    remote = Remote("box", "http://127.0.0.1:9", api_key_env="BOX_KEY")
    config = replace(offline_config, remotes=(remote,))
    app = CoderApp(config, autostart=False, store=store, sample_metrics=False)
    async with app.run_test(size=(160, 50)) as pilot:
        main = app.main
        assert main is not None and main.api_key is None
        await pilot.press("f4")
        await pilot.pause()
        table = app.screen.query_one(FleetTable)
        app.fleet.rows = (FleetRow("box", remote.url, True, ServerPhase.IDLE, 0.0),)
        table.post_message(FleetTable.ChatWith("box"))
        await pilot.pause()
        assert app.screen is main and main.remote is not None
        assert (main.server_url, main.api_key, main.server_ready) == (remote.url, "secret", True)
        assert app.serving.url == "http://127.0.0.1:8084"  # what is served did not change
        await pilot.press("f4")
        await pilot.pause()
        app.screen.query_one(FleetTable).post_message(FleetTable.ChatWith(LOCAL))
        await pilot.pause()
        assert main.remote is None and main.server_url == "http://127.0.0.1:8084"
        assert main.api_key is None and not main.server_ready


async def test_attached_to_a_server_started_elsewhere(store: HistoryStore) -> None:
    app = CoderApp(None, attach_url="http://127.0.0.1:9/", store=store, sample_metrics=False)
    async with app.run_test(size=(120, 40)) as pilot:
        bar = app.screen.query_one(ServerBar)
        await pilot.pause()
        assert bar.serving.label == "attached" and bar.serving.url == "http://127.0.0.1:9"
        assert app.manager is None and app.server.attached is not None
        await pilot.press("f2")
        await pilot.press("f6")
        await pilot.pause()
        messages = [n.message for n in app._notifications]
        assert "attached to a server started elsewhere: coder-tui does not start it" in messages
        assert "attached to a server started elsewhere: no profiles to swap" in messages
