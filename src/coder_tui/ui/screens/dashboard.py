"""The full-screen dashboard: the serving header, every tile, the fleet of remote servers, and the
way back to the chat.

Renders only: the App hands it the serving state, the last snapshot and fleet rows when it opens,
then each new one (``serving``, ``show``, ``show_fleet``). The tiles fill the screen
(``widgets/tile_grid.py``); ``c`` shows each CPU core in the host CPU tile.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType

from coder_tui.core.metrics.fleet import FleetRow
from coder_tui.core.metrics.types import MetricsSnapshot
from coder_tui.ui.screens.serving_view import ServingView
from coder_tui.ui.serving import ServingState
from coder_tui.ui.widgets.fleet import FleetTable
from coder_tui.ui.widgets.key_footer import KeyFooter
from coder_tui.ui.widgets.tile_grid import Dashboard


class DashboardScreen(ServingView):
    """All metrics at once; F4 or Esc returns to the chat."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # Priority, as the App's own F4 ("Dashboard"): the footer shows this one F4, not both.
        Binding("f4", "app.pop_screen", "Back to chat", priority=True),
        Binding("escape", "app.pop_screen", "Back to chat", show=False),
        Binding("c", "per_core", "CPU per core"),
    ]

    def __init__(
        self,
        *,
        fleet: bool = False,
        snapshot: MetricsSnapshot | None = None,
        rows: Sequence[FleetRow] = (),
        serving: ServingState | None = None,
    ) -> None:
        super().__init__()
        self.fleet = fleet
        self._first = snapshot, rows
        """What to show once composed: the last snapshot and fleet rows (the App's)."""
        if serving is not None:
            self.set_reactive(ServingView.serving, serving)

    def compose(self) -> ComposeResult:
        yield self.serving_bar()
        if self.fleet:
            yield FleetTable(id="fleet")
        yield Dashboard(id="full-dashboard")
        yield KeyFooter()

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

    def action_per_core(self) -> None:
        dashboard = self.query_one(Dashboard)
        dashboard.set_per_core(not dashboard.per_core)
