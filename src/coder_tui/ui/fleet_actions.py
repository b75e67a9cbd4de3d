"""The fleet view's side of the App: poll the ``[[remotes]]`` servers, show them on the dashboard,
and point the chat at one of them (or back at this machine's server).

A mixin of ``CoderApp`` (``ui/app.py``); polling is ``core/fleet.py``'s.
"""

from __future__ import annotations

import os
from contextlib import aclosing

from textual import work

from coder_tui.core.metrics.fleet import FleetPoller
from coder_tui.core.server.events import ServerState
from coder_tui.ui.app_base import AppBase
from coder_tui.ui.messages import FleetUpdated
from coder_tui.ui.screens.dashboard import DashboardScreen
from coder_tui.ui.widgets.fleet import FleetTable
from coder_tui.ui.widgets.server_bar import ServerBar


class FleetActions(AppBase):
    """Fleet polling worker and the fleet table's messages."""

    @work(exclusive=True, group="fleet", exit_on_error=False)
    async def _poll_fleet(self) -> None:
        assert self.config is not None
        poller = FleetPoller(self.config.remotes)
        async with aclosing(poller.run()) as batches:
            async for rows in batches:
                self.post_message(FleetUpdated(rows))

    def on_fleet_updated(self, message: FleetUpdated) -> None:
        self.fleet_rows = message.rows
        if isinstance(self.screen, DashboardScreen):
            self.screen.show_fleet(message.rows)

    def on_fleet_table_chat_with(self, message: FleetTable.ChatWith) -> None:
        """Point the chat at a remote server from the fleet view (or back at the local one)."""
        if self.main is None:
            return
        remote = next(
            (r for r in (self.config.remotes if self.config else ()) if r.name == message.name),
            None,
        )
        if remote is None:
            url = self.attached.url if self.attached else (self.manager.url if self.manager else "")
            self.main.server_url, self.main.api_key = url, self.main.local_api_key
            self.main.server_ready = self.main.query_one(ServerBar).state is ServerState.READY
            self.notify("chatting with this machine's server")
        else:
            row = next((r for r in self.fleet_rows if r.name == remote.name), None)
            key = os.environ.get(remote.api_key_env) if remote.api_key_env else None
            self.main.server_url, self.main.api_key = remote.url, key
            self.main.server_ready = bool(row and row.up)
            self.notify(f"chatting with {remote.name} ({remote.url})")
        self.pop_screen()
