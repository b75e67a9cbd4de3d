"""The fleet view on the dashboard: a second real server and a dead one; chat with the remote."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from coder_tui.core.config.loader import Config, Remote
from coder_tui.core.server.ports import free_port
from coder_tui.core.server.process import ServerManager
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui.app import CoderApp
from coder_tui.ui.screens.dashboard import DashboardScreen
from coder_tui.ui.widgets.fleet import FleetTable

from .util import until


async def test_fleet_rows_and_chat_with_a_remote(demo_config: Config, tmp_path: Path) -> None:
    other = ServerManager(
        replace(demo_config.server, port=free_port()), log_dir=tmp_path / "other-logs"
    )
    await other.start(demo_config.profile("iq2_xxs"))
    try:
        remotes = (
            Remote(name="box", url=other.url),
            Remote(name="gone", url=f"http://127.0.0.1:{free_port()}"),
        )
        config = replace(demo_config, remotes=remotes)
        with HistoryStore(tmp_path / "h.sqlite3") as store:
            app = CoderApp(config, store=store, sample_metrics=False)
            async with app.run_test(size=(160, 50)) as pilot:
                await until(lambda: app.main is not None and app.main.server_ready)
                await until(lambda: len(app.fleet.rows) == 2)
                rows = {r.name: r for r in app.fleet.rows}
                assert rows["box"].up and not rows["gone"].up and rows["gone"].error
                await pilot.press("f4")
                await pilot.pause()
                assert isinstance(app.screen, DashboardScreen)
                table = app.screen.query_one(FleetTable)
                await until(lambda: table.row_count == 3)
                table.focus()
                await pilot.press("down", "enter")  # the row after "(this machine)": box
                await pilot.pause()
                assert app.main is not None and app.main.server_url == other.url
                await pilot.press("ctrl+q")
    finally:
        await other.stop()
