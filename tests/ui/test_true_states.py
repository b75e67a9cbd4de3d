"""States that say what is true: a stopped server, an unreachable one, an unset value, a new run."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

import pytest

from coder_tui.core.config.loader import Config, Profile
from coder_tui.core.server.events import ServerState, StateChanged
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui.app import CoderApp
from coder_tui.ui.messages import ServerEventMessage
from coder_tui.ui.screens.profiles import diff_text
from coder_tui.ui.serving import ServingState, not_ready_notice
from coder_tui.ui.widgets.prompt import PromptInput
from coder_tui.ui.widgets.server_bar import ServerBar
from coder_tui.ui.widgets.server_log import ServerLog


def _notices(app: CoderApp) -> list[str]:
    return [n.message for n in app._notifications]


async def test_a_prompt_to_a_stopped_server_says_f2_starts_it(
    offline_config: Config, store: HistoryStore
) -> None:
    app = CoderApp(offline_config, autostart=False, store=store, sample_metrics=False)
    async with app.run_test(size=(100, 30)) as pilot:
        prompt = app.screen.query_one(PromptInput)
        prompt.focus()
        prompt.load_text("hello")
        await pilot.press("enter")
        await pilot.pause()
        assert "the server is stopped — F2 to start" in _notices(app)
        assert "not ready yet" not in " ".join(_notices(app))


def test_not_ready_notice_follows_the_state() -> None:
    loading = ServingState(state=ServerState.LOADING)
    assert "loading" in not_ready_notice(loading)
    crashed = ServingState(state=ServerState.CRASHED)
    assert not_ready_notice(crashed) == "the server is crashed — F2 to start"
    attached = ServingState(state=ServerState.UNREACHABLE, attached=True, detail="cannot connect")
    assert not_ready_notice(attached) == "cannot connect"


async def test_attach_to_a_closed_port_says_it_cannot_connect(store: HistoryStore) -> None:
    app = CoderApp(
        None, attach_url="http://127.0.0.1:1", autostart=False, store=store, sample_metrics=False
    )
    async with app.run_test(size=(120, 30)) as pilot:
        bar = app.screen.query_one(ServerBar)
        deadline = time.monotonic() + 5
        while "cannot connect" not in str(bar.render()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await pilot.pause()
        text = str(bar.render())
        assert "● unreachable" in text and "● stopped" not in text
        assert "http://127.0.0.1:1  cannot connect: connection refused" in text
        assert "retrying every 2 s" in text
        notices = _notices(app)
        assert any(n.startswith("http://127.0.0.1:1: cannot connect: connection") for n in notices)


def test_the_swap_diff_says_unset_not_none(tmp_path: Path) -> None:
    a = Profile(name="a", model=tmp_path / "m.gguf")
    b = replace(a, name="b", n_cpu_moe=16)
    assert diff_text(a, b) == "n_cpu_moe: unset → 16"
    assert diff_text(b, a) == "n_cpu_moe: 16 → unset"


async def test_each_server_run_starts_a_new_section_in_the_log(
    offline_config: Config, store: HistoryStore
) -> None:
    app = CoderApp(offline_config, autostart=False, store=store, sample_metrics=False)
    async with app.run_test(size=(160, 50)) as pilot:
        for _ in range(2):
            app.post_message(
                ServerEventMessage(StateChanged(ServerState.STARTING, "q4_k_m", time.time()))
            )
            await pilot.pause()
        log = app.screen.query_one(ServerLog)
        text = "\n".join(str(line.text) for line in log.lines)
        assert text.count("──── llama-server start: q4_k_m at ") == 2, text


async def test_the_picker_shows_no_speed_from_another_configs_profile_of_that_name(
    offline_config: Config, store: HistoryStore
) -> None:
    """F6 showed ``q8_0 … 955 t/s`` for a profile never run with this config: the speed was
    another config's ``q8_0`` (another model file). Speeds are keyed by the profile's identity
    (model file and flags: ``tests/integration/test_profile_speeds_ui.py``)."""
    from coder_tui.core.config.identity import profile_identity
    from coder_tui.ui.screens.profiles import ProfilesScreen

    conv = store.new_conversation("elsewhere")
    reply = store.begin_reply(conv.id, "q4_k_m", "Other-Config-Q4_K_M.gguf")
    store.finish_reply(reply, "hi", "complete", predicted_per_second=955.0)
    app = CoderApp(offline_config, autostart=False, store=store, sample_metrics=False)
    async with app.run_test(size=(160, 50)) as pilot:
        assert app.switch is not None  # made on mount, whether the server starts or not
        await pilot.press("f6")
        for _ in range(40):
            await pilot.pause(0.05)
            if isinstance(app.screen, ProfilesScreen):
                break
        assert isinstance(app.screen, ProfilesScreen)
        assert app.screen.last_speed == {"q4_k_m": None}
        identity = profile_identity(offline_config.profiles["q4_k_m"])
        mine = store.begin_reply(conv.id, "q4_k_m", "Demo-Q4_K_M.gguf", identity=identity)
        store.finish_reply(mine, "hi", "complete", predicted_per_second=21.5)
        assert store.last_speed(identity) == 21.5


def test_a_load_shows_its_time_and_an_eta_from_the_last_load(tmp_path: Path) -> None:
    from coder_tui.core.server.events import Ready
    from coder_tui.ui.serving import after_event, load_progress

    a = Profile(name="a", model=tmp_path / "a.gguf")
    profiles = {"a": a}
    s = ServingState(profile=a)
    s = after_event(s, StateChanged(ServerState.STARTING, "a", 100.0), profiles)
    assert load_progress(s, 103.0) == "3 s"  # first load: no ETA to go by
    s = after_event(s, Ready("a", "http://x", 1, 12.0), profiles)
    s = after_event(s, StateChanged(ServerState.READY, "a", 112.0), profiles)
    assert load_progress(s, 113.0) == ""
    s = after_event(s, StateChanged(ServerState.STOPPED, "a", 200.0), profiles)
    s = after_event(s, StateChanged(ServerState.STARTING, "a", 300.0), profiles)
    s = after_event(s, StateChanged(ServerState.LOADING, "a", 301.0), profiles)
    assert load_progress(s, 304.0) == "4 s, about 8 s left"
    assert load_progress(s, 311.4) == "11 s, nearly done"


@pytest.mark.parametrize("size", [(80, 24), (160, 50), (120, 40)])
async def test_a_toast_shows_an_export_path_whole(
    offline_config: Config, store: HistoryStore, size: tuple[int, int]
) -> None:
    from textual.geometry import Region
    from textual.widgets._toast import Toast

    conv = store.new_conversation("hello second chat with a long enough title")
    store.add_user_message(conv.id, "hello", "q4_k_m")
    app = CoderApp(offline_config, autostart=False, store=store, sample_metrics=False)
    async with app.run_test(size=size, notifications=True) as pilot:
        await pilot.pause()
        export = next(c for c in app.get_system_commands(app.screen) if "Export" in c.title)
        export.callback()
        for _ in range(20):
            await pilot.pause(0.05)
            if app.screen.query(Toast):
                break
        toast = app.screen.query(Toast).last()
        strips = toast.render_lines(Region(0, 0, *toast.region.size))
        shown = "".join(s.text.strip().lstrip("▌").strip() for s in strips)
        path = app._notifications and list(app._notifications)[-1].message.removeprefix(
            "exported to "
        )
        assert path and path.endswith(".md")
        assert path in shown, (path, shown)
