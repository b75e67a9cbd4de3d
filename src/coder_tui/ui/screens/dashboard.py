"""The full-screen dashboard: every tile, the fleet of remote servers, and the way back to the chat.

Renders only: the App hands it the last snapshot and fleet rows when it opens, then each new one
(``show``, ``show_fleet``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer

from coder_tui.core.metrics.fleet import FleetRow
from coder_tui.core.metrics.types import MetricsSnapshot
from coder_tui.ui.widgets.dashboard import Dashboard
from coder_tui.ui.widgets.fleet import FleetTable


class DashboardScreen(Screen[None]):
    """All metrics at once; F4 or Esc returns to the chat."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f4", "app.pop_screen", "Back to chat", key_display="F4"),
    ]

    def __init__(
        self,
        *,
        fleet: bool = False,
        snapshot: MetricsSnapshot | None = None,
        rows: Sequence[FleetRow] = (),
    ) -> None:
        super().__init__()
        self.fleet = fleet
        self._first = snapshot, rows
        """What to show once composed: the last snapshot and fleet rows (the App's)."""

    def compose(self) -> ComposeResult:
        if self.fleet:
            yield FleetTable(id="fleet")
        yield Dashboard(id="full-dashboard")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.call_after_refresh(self._show_first)  # once the tiles and the table are mounted too

    def _show_first(self) -> None:
        snapshot, rows = self._first
        if snapshot is not None:
            self.show(snapshot)
        if rows:
            self.show_fleet(rows)

    def show(self, snap: MetricsSnapshot) -> None:
        self.query_one(Dashboard).show(snap)

    def show_fleet(self, rows: Sequence[FleetRow]) -> None:
        if self.fleet:
            self.query_one(FleetTable).show(rows)
