"""F6's speeds belong to a profile's identity (model file and flags), against the real server.

The defect: F6 showed ``q8_0 … 955 t/s`` for a profile never run with that config, the speed of
another config's profile of the same name. Here one config's ``q4_k_m`` answers a prompt through
the chat pane; another config's ``q4_k_m`` (same model file, other flags) shows no speed for it,
while the first config's, opened again (on another port), shows it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import DataTable

from coder_tui.core.config.loader import Config, Remote
from coder_tui.core.server.ports import free_port
from coder_tui.core.server.process import ServerManager
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui.app import CoderApp
from coder_tui.ui.format import DASH
from coder_tui.ui.screens.dashboard import DashboardScreen
from coder_tui.ui.screens.main import MainScreen
from coder_tui.ui.screens.profiles import ProfilesScreen
from coder_tui.ui.widgets.fleet import FleetTable
from coder_tui.ui.widgets.message import MessageView

from .util import until


async def _picker_speed(app: CoderApp, pilot: Pilot[None], name: str) -> str:
    """Open F6 and read ``name``'s gen cell as the table shows it."""
    await until(lambda: app.switch is not None, 10)
    await pilot.press("f6")
    await until(lambda: isinstance(app.screen, ProfilesScreen), 20)
    table = app.screen.query_one(DataTable)
    await until(lambda: table.row_count > 0, 10)
    return str(table.get_cell(name, "gen"))


async def test_a_speed_shows_only_for_the_profile_that_made_it(
    demo_config: Config, tmp_path: Path
) -> None:
    mine = demo_config
    profile = mine.profile("q4_k_m")
    theirs = replace(  # another config: a q4_k_m of the same model file, fewer threads
        mine, profiles={**mine.profiles, "q4_k_m": replace(profile, threads=1)}
    )
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        app = CoderApp(mine, store=store, profile_name="q4_k_m", sample_metrics=False)
        async with app.run_test(size=(160, 50)) as pilot:
            await until(lambda: app.main is not None and app.main.server_ready)
            main = app.screen
            assert isinstance(main, MainScreen)
            await pilot.press(*"write a function", "enter")
            await until(lambda: len(main.query(MessageView)) == 2)
            await until(
                lambda: (
                    not main.generating
                    and main.conversation is not None
                    and store.messages(main.conversation.id)[-1].status != "streaming"
                )
            )
            assert main.conversation is not None
            reply = store.messages(main.conversation.id)[-1]
            assert reply.status == "complete" and reply.predicted_per_second
            shown = await _picker_speed(app, pilot, "q4_k_m")
            assert shown.endswith(" t/s"), shown

        other = CoderApp(theirs, store=store, autostart=False, sample_metrics=False)
        async with other.run_test(size=(160, 50)) as pilot:
            assert await _picker_speed(other, pilot, "q4_k_m") == DASH  # never run with these flags

        moved = replace(mine, server=replace(mine.server, port=free_port()))
        again = CoderApp(moved, store=store, autostart=False, sample_metrics=False)
        async with again.run_test(size=(160, 50)) as pilot:
            assert await _picker_speed(again, pilot, "q4_k_m") == shown  # a port is not a profile


async def test_a_remotes_reply_is_no_local_profiles_speed(
    demo_config: Config, tmp_path: Path
) -> None:
    """Chatting with a ``[[remotes]]`` server from the fleet view stored its replies under the
    local profile's name (and so its speed), though another server made them."""
    other = ServerManager(
        replace(demo_config.server, port=free_port()), log_dir=tmp_path / "other-logs"
    )
    await other.start(demo_config.profile("iq2_xxs"))
    try:
        config = replace(demo_config, remotes=(Remote(name="box", url=other.url),))
        with HistoryStore(tmp_path / "h.sqlite3") as store:
            app = CoderApp(config, store=store, profile_name="q4_k_m", sample_metrics=False)
            async with app.run_test(size=(160, 50)) as pilot:
                await until(lambda: app.main is not None and app.main.server_ready)
                await until(lambda: len(app.fleet.rows) == 1 and app.fleet.rows[0].up)
                main = app.main
                assert main is not None
                await pilot.press("f4")
                await until(lambda: isinstance(app.screen, DashboardScreen), 10)
                table = app.screen.query_one(FleetTable)
                await until(lambda: table.row_count == 2)
                table.focus()
                await pilot.press("down", "enter")  # the row after "(this machine)": box
                await until(lambda: main.remote is not None and app.screen is main)
                assert main.server_url == other.url
                await pilot.press(*"write a function", "enter")
                await until(
                    lambda: (
                        not main.generating
                        and main.conversation is not None
                        and store.messages(main.conversation.id)[-1].role == "assistant"
                        and store.messages(main.conversation.id)[-1].status != "streaming"
                    )
                )
                assert main.conversation is not None
                reply = store.messages(main.conversation.id)[-1]
                assert reply.status == "complete" and reply.predicted_per_second
                assert reply.profile is None and reply.profile_identity is None
                assert await _picker_speed(app, pilot, "q4_k_m") == DASH
    finally:
        await other.stop()
