"""The TUI shell: opens on the default profile, shows state and log, start/stop/restart, q quits."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psutil

from coder_tui.core.config.loader import Config, Profile, ServerSettings
from coder_tui.core.server.events import ServerState
from coder_tui.core.server.ports import free_port
from coder_tui.ui.app import CoderApp
from coder_tui.ui.widgets.server_bar import ServerBar
from coder_tui.ui.widgets.server_log import ServerLog


def _bar(app: CoderApp) -> ServerBar:
    return app.screen.query_one(ServerBar)


def _config(tmp_path: Path, binary: Path, mode: str = "normal") -> Config:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    profile = Profile(name="demo", model=model, env={"FAKE_MODE": mode, "FAKE_LOAD_S": "0.2"})
    server = ServerSettings(binary=binary, port=free_port(), ready_timeout_s=10, stop_grace_s=3)
    return Config(path=None, server=server, profiles={"demo": profile}, default_profile="demo")


async def _wait_state(app: CoderApp, state: ServerState, pilot_pause: object) -> None:
    for _ in range(200):
        if _bar(app).serving.state is state:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"state stayed {_bar(app).serving.state}, wanted {state}")


async def test_shell_starts_stops_and_quits(tmp_path: Path, fake_server_binary: Path) -> None:
    app = CoderApp(_config(tmp_path, fake_server_binary))
    app.autostart = True
    async with app.run_test(size=(100, 30)) as pilot:
        await _wait_state(app, ServerState.READY, pilot)
        assert app.manager is not None and app.manager.pid is not None
        pid = app.manager.pid
        bar = _bar(app)
        assert bar.serving.label == "demo" and bar.serving.load_time_s is not None
        await pilot.pause(0.2)
        assert app.screen.query_one(ServerLog).lines, "server log shows the server's output"
        await pilot.press("f3")
        await _wait_state(app, ServerState.STOPPED, pilot)
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
        await pilot.press("f2")
        await _wait_state(app, ServerState.READY, pilot)
        pid2 = app.manager.pid
        await pilot.press("f5")
        await asyncio.sleep(0.3)
        await _wait_state(app, ServerState.READY, pilot)
        assert app.manager.pid not in (None, pid2)
        pid3 = app.manager.pid
        await pilot.press("ctrl+q")
    assert pid3 is not None and not psutil.pid_exists(pid3)


async def test_shell_shows_start_failure(tmp_path: Path, fake_server_binary: Path) -> None:
    app = CoderApp(_config(tmp_path, fake_server_binary, mode="crash_load"))
    async with app.run_test(size=(100, 30)) as pilot:
        await _wait_state(app, ServerState.CRASHED, pilot)
        await pilot.pause(0.3)
        assert "failed to load the model" in _bar(app).serving.detail


async def test_crashed_server_restarts_within_budget(
    tmp_path: Path, fake_server_binary: Path
) -> None:
    from coder_tui.core.server.restart import RestartPolicy

    app = CoderApp(_config(tmp_path, fake_server_binary), sample_metrics=False)
    async with app.run_test(size=(100, 30)) as pilot:
        app.server.restart_policy = RestartPolicy(max_restarts=1, base_backoff_s=0.1)
        await _wait_state(app, ServerState.READY, pilot)
        assert app.manager is not None and app.manager.pid is not None
        first = app.manager.pid
        psutil.Process(first).kill()
        await _wait_state(app, ServerState.CRASHED, pilot)
        await _wait_state(app, ServerState.READY, pilot)
        second = app.manager.pid
        assert second is not None and second != first
        psutil.Process(second).kill()  # the budget (1 in 60 s) is spent now
        await _wait_state(app, ServerState.CRASHED, pilot)
        await asyncio.sleep(0.5)
        assert _bar(app).serving.state is ServerState.CRASHED
        assert any("not restarting it again" in n.message for n in app._notifications)
        await pilot.press("ctrl+q")


async def test_a_swap_from_the_picker_moves_the_one_serving_state(
    tmp_path: Path, fake_server_binary: Path
) -> None:
    """F6, a row, Enter, y: the fake server is swapped for the other profile's; the bar, the main
    screen's profile and the next F2 all follow the one serving state."""
    from dataclasses import replace

    from coder_tui.ui.screens.confirm import ConfirmScreen
    from coder_tui.ui.screens.main import MainScreen
    from coder_tui.ui.screens.profiles import ProfilesScreen

    config = _config(tmp_path, fake_server_binary)
    other_model = tmp_path / "other.gguf"
    other_model.write_bytes(b"GGUF")
    other = replace(config.profile("demo"), name="other", model=other_model)
    config = replace(config, profiles={"demo": config.profile("demo"), "other": other})
    app = CoderApp(config, sample_metrics=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await _wait_state(app, ServerState.READY, pilot)
        main = app.screen
        assert isinstance(main, MainScreen) and main.server_ready
        await pilot.press("f6")
        for _ in range(100):
            if isinstance(app.screen, ProfilesScreen):
                break
            await asyncio.sleep(0.05)
        await pilot.press("down", "enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        for _ in range(200):
            if (
                app.manager is not None
                and app.manager.profile_name == "other"
                and main.server_ready
            ):
                break
            await asyncio.sleep(0.05)
        await pilot.pause(0.2)
        bar = _bar(app)
        assert bar.serving is app.serving and bar.serving.label == "other"
        assert main.profile is other and bar.serving.detail == ""
        assert app.switch is not None and app.switch.load_times.keys() == {"demo", "other"}
        assert any(n.message.startswith("now serving other") for n in app._notifications)
        await pilot.press("f3")
        await _wait_state(app, ServerState.STOPPED, pilot)
        await pilot.press("f2")  # starts what the bar shows
        await _wait_state(app, ServerState.READY, pilot)
        assert app.manager.profile_name == "other"
        await pilot.press("ctrl+q")
