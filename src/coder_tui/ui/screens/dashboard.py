"""The full-screen dashboard: every tile, the server bar, and the way back to the chat."""

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

    def __init__(self, *, fleet: bool = False) -> None:
        super().__init__()
        self.fleet = fleet

    def compose(self) -> ComposeResult:
        if self.fleet:
            yield FleetTable(id="fleet")
        yield Dashboard(id="full-dashboard")
        yield Footer(compact=True)

    def show(self, snap: MetricsSnapshot) -> None:
        self.query_one(Dashboard).show(snap)

    def show_fleet(self, rows: Sequence[FleetRow]) -> None:
        if self.fleet:
            self.query_one(FleetTable).show(rows)
