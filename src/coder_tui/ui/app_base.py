"""The App's state, declared once: the services and what the App remembers while it runs.

``CoderApp`` (``ui/app.py``) sets these in ``__init__``/``on_mount``; its action mixins
(``server_actions.py``, ``swap_actions.py``, ``fleet_actions.py``, ``metrics_actions.py``) read
them. Declaring them here keeps each module small and lets the type checker see what every part
uses.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.app import App

from coder_tui.core.config.loader import Config
from coder_tui.core.metrics.bus import MetricsSampler
from coder_tui.core.metrics.fleet import FleetRow
from coder_tui.core.metrics.types import MetricsSnapshot
from coder_tui.core.server.attach import AttachedServer
from coder_tui.core.server.events import ServerEvent
from coder_tui.core.server.process import ServerManager
from coder_tui.core.server.restart import RestartPolicy
from coder_tui.core.server.swap import Swapper
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui.messages import ServerEventMessage
from coder_tui.ui.screens.main import MainScreen


class AppBase(App[int]):
    """State shared by the App and its action mixins (no behaviour of its own)."""

    config: Config | None
    attach_url: str | None
    autostart: bool
    profile_name: str | None
    manager: ServerManager | None
    attached: AttachedServer | None
    swapper: Swapper | None
    store: HistoryStore | None
    sample_metrics: bool
    keep_server: bool
    metrics_interval_s: float
    main: MainScreen | None
    load_times: dict[str, float]
    sampler: MetricsSampler | None
    last_metrics: MetricsSnapshot | None
    _unlisten: Callable[[], None] | None
    auto_restart: bool
    fleet_rows: tuple[FleetRow, ...]
    restart_policy: RestartPolicy
    terminated_by_signal: bool = False
    """SIGHUP or SIGTERM arrived (``ServerActions``): the exit is a requested one."""

    def _forward(self, event: ServerEvent) -> None:
        """Server events (from any thread or task) become messages to the App."""
        self.post_message(ServerEventMessage(event))
