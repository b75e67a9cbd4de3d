"""The Textual App: owns the services (server, history store), routes their events to the screen.

Services start in ``on_mount`` and stop in ``on_unmount``; screens and widgets get data through
attributes and messages and never touch the services' internals. I/O runs in workers.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Callable
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.driver import Driver

from coder_tui import __version__
from coder_tui.core.chat.pacing import BusyPace
from coder_tui.core.config.app_state import load_state, remember
from coder_tui.core.config.loader import ChatSettings, Config
from coder_tui.core.errors import UserError
from coder_tui.core.exporter.http import PrometheusExporter
from coder_tui.core.metrics.bus import MetricsSampler
from coder_tui.core.metrics.fleet import FleetRow
from coder_tui.core.metrics.gpu import GpuProbe
from coder_tui.core.metrics.types import MetricsSnapshot
from coder_tui.core.paths import app_paths
from coder_tui.core.security import advisory_warning, key_exposure_warning
from coder_tui.core.server.agent_env import env_lines
from coder_tui.core.server.attach import AttachedServer
from coder_tui.core.server.events import (
    Exited,
    LogLine,
    Ready,
    ServerState,
    StateChanged,
)
from coder_tui.core.server.process import ServerManager
from coder_tui.core.server.restart import RestartPolicy
from coder_tui.core.server.swap import Swapper
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui.driver import driver_class
from coder_tui.ui.fleet_actions import FleetActions
from coder_tui.ui.messages import ServerEventMessage, ServerFailed
from coder_tui.ui.metrics_actions import BUSY_SLOWDOWN, MetricsActions
from coder_tui.ui.screens.connect import ConnectScreen
from coder_tui.ui.screens.dashboard import DashboardScreen
from coder_tui.ui.screens.main import MainScreen
from coder_tui.ui.server_actions import ServerActions
from coder_tui.ui.swap_actions import SwapActions
from coder_tui.ui.themes import BUILTIN_DIR, DEFAULT_THEME, load_themes
from coder_tui.ui.widgets.server_bar import ServerBar
from coder_tui.ui.widgets.server_log import ServerLog


class CoderApp(ServerActions, SwapActions, FleetActions, MetricsActions):
    """coder-tui's main window."""

    CSS_PATH = "app.tcss"
    TITLE = "coder-tui"
    SUB_TITLE = __version__
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]  # noqa: RUF012 (Textual's own)
    BINDINGS: ClassVar[list[BindingType]] = [
        # Function keys work while the prompt has focus; the letters when it does not.
        # Function keys win over the focused widget (TextArea takes F6/F7 for selection), so they
        # work while typing; the letters only when the prompt does not have focus.
        Binding("f1", "toggle_help", "Keys", priority=True),
        Binding("f2", "start", "Start", priority=True, show=False),
        Binding("f3", "stop", "Stop", priority=True, show=False),
        Binding("f5", "restart", "Restart", priority=True, show=False),
        Binding("f4", "dashboard", "Dashboard", priority=True),
        Binding("f6", "profiles", "Profiles", priority=True),
        Binding("f7", "compare", "Compare", priority=True),
        Binding("f8", "connect", "Connect", priority=True),
        Binding("f9", "bench", "Bench", priority=True),
        Binding("s", "start", "Start", show=False),
        Binding("x", "stop", "Stop", show=False),
        Binding("r", "restart", "Restart", show=False),
        Binding("ctrl+q,q", "quit", "Quit", key_display="^q"),
        # Ctrl+Z as in a shell (Textual turns off the terminal's own): stop, and resume on `fg`.
        # The prompt keeps it for undo; the server, a process of its own, keeps running.
        Binding("ctrl+z", "suspend_process", "Suspend", show=False),
    ]

    def __init__(
        self,
        config: Config | None,
        *,
        profile_name: str | None = None,
        attach_url: str | None = None,
        autostart: bool = True,
        store: HistoryStore | None = None,
        sample_metrics: bool = True,
        keep_server: bool = False,
        metrics_interval_s: float = 1.0,
        exporter: object | None = None,
        auto_restart: bool = True,
    ) -> None:
        super().__init__()
        self.config = config
        self.attach_url = attach_url
        self.autostart = autostart
        self.profile_name = profile_name
        self.manager: ServerManager | None = None
        self.attached: AttachedServer | None = None
        self.store = store
        self.sample_metrics = sample_metrics
        self.keep_server = keep_server
        self.metrics_interval_s = metrics_interval_s
        self._own_store = False
        self.auto_restart = auto_restart
        self.restart_policy = RestartPolicy()
        self.fleet_rows: tuple[FleetRow, ...] = ()
        self.exporter = exporter if isinstance(exporter, PrometheusExporter) else None
        self.main: MainScreen | None = None
        self.swapper: Swapper | None = None
        self.load_times: dict[str, float] = {}
        self.sampler: MetricsSampler | None = None
        self.last_metrics: MetricsSnapshot | None = None
        busy = (config.chat if config else ChatSettings()).busy_refresh_s
        self.tiles_pace = BusyPace(float(BUSY_SLOWDOWN) if busy > 0 else 0.0)
        """Saturated while no CPU core is idle (from the host samples): see ``_on_saturation``.
        ``[chat] busy_refresh_s = 0`` turns this slowing off too."""
        self._unlisten: Callable[[], None] | None = None

    def get_driver_class(self) -> type[Driver]:
        """Textual's choice, with an input thread that does not wake ten times a second."""
        return driver_class(super().get_driver_class())

    async def on_mount(self) -> None:
        # Once the first frame is up, move what start-up made (widgets, CSS, Textual's caches,
        # the loaded history) out of the garbage collector's reach: a full collection over it
        # paused a streaming reply for 50-130 ms (benchmarks/chat_render.py, docs/performance.md).
        self.call_after_refresh(gc.freeze)
        self._load_themes()
        if self.exporter is not None:
            try:
                self.exporter.start()
                self.notify(f"Prometheus metrics at {self.exporter.url}")
            except UserError as exc:
                self.notify(str(exc), severity="error", timeout=10)
                self.exporter = None
        if self.store is None:
            try:
                self.store = HistoryStore(app_paths().history_db)
                self._own_store = True
            except UserError as exc:
                self.exit(return_code=2, message=str(exc))
                return
        chat = self.config.chat if self.config else ChatSettings()
        api_key = os.environ.get(chat.api_key_env) if chat.api_key_env else None
        self.main = MainScreen(self.store, chat, api_key)
        await self.push_screen(self.main)
        if not self.sample_metrics:
            for selector in ("#strip", "#tiles"):
                self.main.query_one(selector).display = False
        bar = self.main.query_one(ServerBar)
        if self.attach_url:
            self.attached = AttachedServer(self.attach_url)
            self._unlisten = self.attached.add_listener(self._forward)
            self.main.server_url = bar.url = self.attached.url
            bar.profile = "attached"
            self._watch_attached()
            if self.sample_metrics:
                self._sample_metrics(self.attached.url)
            return
        assert self.config is not None
        try:
            profile = self.config.profile(self.profile_name)
        except UserError as exc:
            self.notify(str(exc), severity="error", timeout=10)
            return
        self.profile_name = profile.name
        paths = app_paths()
        self.manager = ServerManager(
            self.config.server,
            log_dir=paths.log_dir,
            cache_dir=paths.cache_dir,
            run_dir=paths.run_dir,
            keep_on_exit=self.keep_server,
        )
        self._install_signal_handlers()
        exposure = key_exposure_warning(self.config)
        if exposure:
            self.notify(exposure, severity="warning", timeout=15)
        self._unlisten = self.manager.add_listener(self._forward)
        self.swapper = Swapper(self.manager, gpu=GpuProbe())
        self.main.profile = profile
        self.main.server_url = bar.url = self.manager.url
        bar.profile = profile.name
        if self.sample_metrics:
            self._sample_metrics(self.manager.url)
        if self.config.remotes:
            self._poll_fleet()
        if self.autostart:
            self.action_start()

    # -- workers -------------------------------------------------------------------------------
    def _load_themes(self) -> None:
        """Shipped and user themes; a broken file is reported and skipped. The choice persists."""
        paths = app_paths()
        themes, problems = load_themes(BUILTIN_DIR, paths.config_dir / "themes")
        for theme in themes:
            self.register_theme(theme)
        for problem in problems:
            self.notify(f"theme skipped: {problem}", severity="warning", timeout=10)
        wanted = load_state(paths.state_file).get("theme")
        self.theme = wanted if wanted in self.available_themes else DEFAULT_THEME
        self.theme_changed_signal.subscribe(
            self, lambda theme: remember(paths.state_file, theme=theme.name)
        )

    def action_connect(self) -> None:
        """F8: base URLs and environment lines for coding agents (same as ``coder-tui env``)."""
        url = self.attached.url if self.attached else (self.manager.url if self.manager else "")
        profile = self.main.profile if self.main else None
        model = profile.model.stem if profile else None
        title = f"Connect a coding agent to {url}" + (f" ({profile.name})" if profile else "")
        self.push_screen(ConnectScreen(env_lines(url, model), title))

    def action_toggle_help(self) -> None:
        """F1: the key panel (every binding of the focused widget, its screen and the app)."""
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def action_dashboard(self) -> None:
        if isinstance(self.screen, DashboardScreen):
            self.pop_screen()
            return
        screen = DashboardScreen(fleet=bool(self.config and self.config.remotes))
        self.push_screen(screen)
        if self.last_metrics is not None:
            self.call_after_refresh(screen.show, self.last_metrics)
        if self.fleet_rows:
            self.call_after_refresh(screen.show_fleet, self.fleet_rows)

    async def action_quit(self) -> None:
        await self._stop_services()
        self.exit(0)

    async def _stop_services(self) -> None:
        self.workers.cancel_group(self, "server")
        self.workers.cancel_group(self, "metrics")
        self.workers.cancel_group(self, "fleet")
        if self.main is not None:
            self.workers.cancel_group(self.main, "chat")
        if self.manager is not None:
            if self.keep_server and self.manager.running:
                self.manager.detach()  # --keep-server: left running on purpose, record kept
            else:
                with contextlib.suppress(Exception):
                    await self.manager.stop()
                self.manager.close()

    async def on_unmount(self) -> None:
        # The screens are gone by now: stop forwarding events before the final stop.
        if self._unlisten is not None:
            self._unlisten()
        await self._stop_services()
        if self.exporter is not None:
            self.exporter.stop()
        if self.store is not None and self._own_store:
            self.store.close()  # a store handed in by the caller is the caller's to close

    # -- messages ------------------------------------------------------------------------------
    def on_server_event_message(self, message: ServerEventMessage) -> None:
        if self.main is None:
            return
        event = message.event
        bar = self.main.query_one(ServerBar)
        if isinstance(event, LogLine):
            self.main.query_one(ServerLog).add_lines([event.text])
        elif isinstance(event, StateChanged):
            bar.state = event.state
            self.main.server_ready = event.state is ServerState.READY
            if event.profile:
                bar.profile = event.profile
        elif isinstance(event, Ready):
            bar.load_time_s = event.load_time_s
            advisory = advisory_warning(self.manager.version or "") if self.manager else None
            if advisory:
                self.notify(advisory, severity="warning", timeout=15)
            if event.profile:
                self.load_times[event.profile] = event.load_time_s
            bar.detail = ""
            if self.sampler is not None and self.manager is not None:
                self.sampler.watch(pid=event.pid, profile=self.manager.profile, base_url=event.url)
        elif isinstance(event, Exited) and not event.expected:
            bar.detail = event.reason
            self.notify(f"llama-server {event.reason}", severity="error", timeout=10)
            self._after_crash()

    def on_server_failed(self, message: ServerFailed) -> None:
        if self.main is None:
            return
        first = message.text.splitlines()[0] if message.text else "failed"
        self.main.query_one(ServerBar).detail = first
        self.main.query_one(ServerLog).add_lines(message.text.splitlines())
        self.notify(first, severity="error", timeout=10)
