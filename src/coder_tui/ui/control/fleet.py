"""The fleet for the App: poll the ``[[remotes]]`` servers and say where "chat with it" points.

Owns ``FleetWatch``: a worker (group ``fleet``) iterates ``core/metrics/fleet.py``'s poller, keeps
the last rows and posts ``FleetUpdated`` so the App can show them on the dashboard. Choosing a row
(``FleetTable.ChatWith``) becomes a ``RemoteChat`` that the App hands to the main screen.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import aclosing
from typing import Any

from textual.app import App
from textual.worker import Worker

from coder_tui.core.config.loader import Remote
from coder_tui.core.metrics.fleet import FleetPoller, FleetRow
from coder_tui.ui.messages import FleetUpdated
from coder_tui.ui.serving import RemoteChat


class FleetWatch:
    """The remote servers' last rows, and the chat target for one of them."""

    def __init__(self, app: App[Any], remotes: Sequence[Remote]) -> None:
        self.app = app
        self.remotes = tuple(remotes)
        self.rows: tuple[FleetRow, ...] = ()

    def start(self) -> Worker[None] | None:
        """Poll the remotes, if there are any (the dashboard shows the fleet only then)."""
        if not self.remotes:
            return None
        return self.app.run_worker(self._poll, group="fleet", exclusive=True, exit_on_error=False)

    async def _poll(self) -> None:
        poller = FleetPoller(self.remotes)
        async with aclosing(poller.run()) as batches:
            async for rows in batches:
                self.rows = rows
                self.app.post_message(FleetUpdated(rows))

    def remote_chat(self, name: str) -> RemoteChat | None:
        """The remote named ``name`` as a chat target; ``None`` for this machine's server."""
        remote = next((r for r in self.remotes if r.name == name), None)
        if remote is None:
            return None
        row = next((r for r in self.rows if r.name == remote.name), None)
        key = os.environ.get(remote.api_key_env) if remote.api_key_env else None
        return RemoteChat(remote.name, remote.url, key, bool(row and row.up))
