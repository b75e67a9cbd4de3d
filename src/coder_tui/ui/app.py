"""The Textual App: owns the services and the one serving state; each concern is delegated.

Services start in ``on_mount`` and stop in ``on_unmount``, through plain helpers (``ui/control/``)
handed what they drive: ``ServerControl``, ``ProfileSwitch``, ``FleetWatch``, ``MetricsFeed``.
``serving`` (``ui/serving.py``) is the one record of what is served: only the App changes it, from
the server's events and its helpers' messages, and hands it down (``MainScreen.serving``, bound
into the server bar). The App never reaches into a screen's widgets. I/O runs in workers.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, ClassVar

from textual import on
from textual.app import App, ScreenStackError, SystemCommand
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.driver import Driver
from textual.reactive import var
from textual.screen import Screen
from textual.widgets._toast import ToastRack

from coder_tui import __version__
from coder_tui.core.config.app_state import load_state, remember
from coder_tui.core.config.key_checks import key_exposure_warning, override_warnings
from coder_tui.core.config.loader import ChatSettings, Config
from coder_tui.core.config.starter import FirstRunOffer
from coder_tui.core.errors import UserError
from coder_tui.core.exporter.http import PrometheusExporter
from coder_tui.core.metrics.gpu import GpuProbe
from coder_tui.core.paths import app_paths
from coder_tui.core.sanitize import sanitize_line
from coder_tui.core.server.events import Exited, LogLine, Ready, ServerState, StateChanged
from coder_tui.core.server.process import ServerManager
from coder_tui.core.server.swap import Swapper
from coder_tui.core.store.history import HistoryStore, open_history
from coder_tui.ui import toasts
from coder_tui.ui.control.fleet import FleetWatch
from coder_tui.ui.control.metrics import MetricsFeed
from coder_tui.ui.control.palette import app_commands, export_conversation
from coder_tui.ui.control.profiles import ProfileSwitch, after_swap_event
from coder_tui.ui.control.server import ServerControl, install_exit_signals, start_exit_backstop
from coder_tui.ui.driver import driver_class
from coder_tui.ui.keys import APP_BINDINGS, key_name
from coder_tui.ui.messages import (
    FleetUpdated,
    MetricsUpdated,
    PortTaken,
    ServerEventMessage,
    ServerFailed,
    ServerLogLines,
    SwapReport,
)
from coder_tui.ui.screens.connect import ConnectScreen
from coder_tui.ui.screens.dashboard import DashboardScreen
from coder_tui.ui.screens.first_run import FirstRunScreen
from coder_tui.ui.screens.help import HelpScreen
from coder_tui.ui.screens.main import MainScreen
from coder_tui.ui.screens.serving_view import ServingView
from coder_tui.ui.serving import ServingState, after_event, run_divider
from coder_tui.ui.themes import DEFAULT_THEME, builtin_themes_dir, load_themes
from coder_tui.ui.widgets.fleet import FleetTable


class CoderApp(App[int]):
    """coder-tui's main window."""

    CSS_PATH = "app.tcss"
    TITLE = "coder-tui"
    SUB_TITLE = __version__
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]  # noqa: RUF012 (Textual's own)
    BINDINGS: ClassVar[list[BindingType]] = list(APP_BINDINGS)  # ui/keys.py

    serving: var[ServingState] = var(ServingState)
    """What is served: the one copy. Handed down to the main screen whenever it changes."""

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
        first_run: FirstRunOffer | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.first_run = first_run
        """No config yet: the app only asks what to do (``first_run_choice``) and closes."""
        self.first_run_choice: str | None = None
        self.first_profile = profile_name  # asked for on the command line; None: the default
        self.attach_url = attach_url
        self.autostart = autostart
        self.store = store
        self._own_store = False
        self.sample_metrics = sample_metrics
        self.keep_server = keep_server
        self.main: MainScreen | None = None
        self.terminated_by_signal = False  # SIGHUP or SIGTERM: the exit is a requested one
        busy_refresh_s = (config.chat if config else ChatSettings()).busy_refresh_s
        self.metrics = MetricsFeed(
            self,
            interval_s=metrics_interval_s,
            busy_refresh_s=busy_refresh_s,
            exporter=exporter if isinstance(exporter, PrometheusExporter) else None,
        )
        self.fleet = FleetWatch(self, config.remotes if config else ())
        self.server = ServerControl(self, auto_restart=auto_restart)
        self.switch: ProfileSwitch | None = None  # only while coder-tui manages the server

    @property
    def manager(self) -> ServerManager | None:
        """The managed server's manager (``None``: watching one started elsewhere)."""
        return self.server.manager

    def get_driver_class(self) -> type[Driver]:
        """Textual's choice, with an input thread that does not wake ten times a second."""
        return driver_class(super().get_driver_class())

    async def on_mount(self) -> None:
        # Once the first frame is up, move what start-up made (widgets, CSS, Textual's caches,
        # the loaded history) out of the garbage collector's reach: a full collection over it
        # paused a streaming reply for 50-130 ms (benchmarks/chat_render.py, docs/performance.md).
        self.call_after_refresh(gc.freeze)
        self._load_themes()
        if self.first_run is not None:
            self.push_screen(FirstRunScreen(self.first_run), self._first_run_chosen)
            return
        self.metrics.start_exporter()
        if self.store is None:
            try:
                self.store = open_history(app_paths().history_db)  # degrades, never crashes
                self._own_store = True
            except UserError as exc:
                self.exit(return_code=2, message=str(exc))
                return
        chat = self.config.chat if self.config else ChatSettings()
        api_key = os.environ.get(chat.api_key_env) if chat.api_key_env else None
        self.set_class(not self.sample_metrics, "-no-metrics")  # app.tcss hides the tiles
        self.main = MainScreen(self.store, chat, api_key)
        self.main.serving = self.serving
        await self.push_screen(self.main)
        if self.attach_url:
            attached = self.server.attach(self.attach_url)
            self.serving = ServingState(url=attached.url, attached=True)
            if self.sample_metrics:
                self.metrics.start(self.serving.url, api_key, attached=True)
            return
        assert self.config is not None
        try:
            profile = self.config.profile(self.first_profile)
        except UserError as exc:
            self.notify(str(exc), severity="error", timeout=10)
            return
        manager = self.server.manage(self.config.server, keep_server=self.keep_server)
        swapper = Swapper(manager, gpu=GpuProbe())
        self.switch = ProfileSwitch(
            self, self.config, manager, swapper, self.store, chat_busy=self._chat_busy
        )
        install_exit_signals(self._on_terminate_signal)
        for warning in [key_exposure_warning(self.config), *override_warnings(self.config)]:
            if warning:
                self.notify(sanitize_line(warning), severity="warning", timeout=15)
        self.serving = ServingState(profile=profile, url=manager.url)
        if self.sample_metrics:
            self.metrics.start(manager.url, api_key, attached=False)
        self.fleet.start()
        if self.autostart:
            self.action_start()

    def _first_run_chosen(self, choice: str | None) -> None:
        self.first_run_choice = choice
        self.exit(0)

    def _load_themes(self) -> None:
        """Shipped and user themes; a broken file is reported and skipped. The choice persists."""
        paths = app_paths()
        themes, problems = load_themes(builtin_themes_dir(), paths.config_dir / "themes")
        for theme in themes:
            self.register_theme(theme)
        for problem in problems:
            self.notify(f"theme skipped: {problem}", severity="warning", timeout=10)
        wanted = load_state(paths.state_file).get("theme")
        self.theme = wanted if wanted in self.available_themes else DEFAULT_THEME
        self.theme_changed_signal.subscribe(
            self, lambda theme: remember(paths.state_file, theme=theme.name)
        )

    def _chat_busy(self) -> bool:
        return self.main is not None and self.main.generating

    def _server_log(self, lines: tuple[str, ...]) -> None:
        if self.main is not None:
            self.main.post_message(ServerLogLines(lines))

    def watch_serving(self, serving: ServingState) -> None:
        if self.main is not None:
            self.main.serving = serving
        for screen in self.screen_stack:  # the dashboard's, compare's and bench's headers too
            if isinstance(screen, ServingView):
                screen.serving = serving

    def on_serving_view_wanted(self, message: ServingView.Wanted) -> None:
        message.view.serving = self.serving

    # -- actions -------------------------------------------------------------------------------
    def action_start(self) -> None:
        self.server.start(self.serving.profile)

    def action_stop(self) -> None:
        self.server.stop()

    def action_restart(self) -> None:
        self.server.restart(self.serving.profile)

    def action_profiles(self) -> None:
        if self.switch is None:
            self.notify("attached to a server started elsewhere: no profiles to swap")
            return
        self.switch.pick(self.serving.profile)

    def action_compare(self, a: str = "", b: str = "") -> None:
        """F7 (or the palette's "Compare A vs B"): compare mode, with ``a`` and ``b`` selected."""
        if self.switch is None:
            self.notify("compare needs profiles that coder-tui manages")
            return
        prompt = self.main.last_prompt() if self.main is not None else ""
        self.switch.compare(prompt, a or None, b or None)

    def action_bench(self) -> None:
        """F9: the benchmark, run through this app's server; the profile is restarted after."""
        if self.switch is None:
            self.notify("the bench needs profiles that coder-tui manages")
            return
        self.switch.bench()

    def action_connect(self) -> None:
        """F8: base URLs and environment lines for coding agents (same as ``coder-tui env``)."""
        key_env = self.config.server.api_key_env if self.config else None
        self.push_screen(ConnectScreen.for_serving(self.serving, key_env))

    def get_key_display(self, binding: Binding) -> str:
        """Keys as people read them, as the help (F1) writes them: ``F2``, ``Esc``, ``Ctrl+B``
        (Textual writes ``f2``, ``esc``, ``^b``)."""
        return binding.key_display or key_name(binding.key)

    def _refresh_notifications(self) -> None:
        """Textual's, but the rack gets only the newest toasts that fit (``ui/toasts.py``)."""
        try:
            rack = self.screen.get_child_by_type(ToastRack)
        except (ScreenStackError, NoMatches):
            return
        self.call_later(rack.show, toasts.fitting(self._notifications, self.screen.size))

    def action_toggle_help(self) -> None:
        """F1 or ``?``: the keys of the screen showing, then the global ones (again: close)."""
        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss(None)
        else:
            self.push_screen(HelpScreen.over(self, self.screen))

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Ctrl+P: the app's commands by name, then Textual's own (theme, quit...)."""
        store, main = self.store, self.main

        def export() -> None:
            if main is not None and store is not None:
                export_conversation(self, store, main.conversation)

        yield from app_commands(
            self,
            screen,
            profile_names=self.config.profiles if self.config else (),
            swap_to=self.switch.confirm if self.switch is not None else None,
            chat=main,
            export=export,
        )
        for command in super().get_system_commands(screen):
            if command.title != "Keys":  # Textual's generic key panel: F1 is ours
                yield command

    def action_dashboard(self) -> None:
        if isinstance(self.screen, DashboardScreen):
            self.pop_screen()
            return
        fleet = bool(self.config and self.config.remotes)
        self.push_screen(
            DashboardScreen(
                fleet=fleet, snapshot=self.metrics.last, rows=self.fleet.rows, serving=self.serving
            )
        )

    async def action_quit(self) -> None:
        await self._stop_services()
        self.exit(0)

    def _on_terminate_signal(self) -> None:
        """SIGHUP (SSH dropped) or SIGTERM: stop the server, then exit, with a hard backstop."""
        self.terminated_by_signal = True
        start_exit_backstop(self.manager)
        self.call_later(self.action_quit)

    async def _stop_services(self) -> None:
        for group in ("server", "metrics", "fleet"):
            self.workers.cancel_group(self, group)
        if self.main is not None:
            self.workers.cancel_group(self.main, "chat")
        await self.server.shutdown()

    async def on_unmount(self) -> None:
        self.server.unlisten()  # the screens are gone by now: no more events before the stop
        await self._stop_services()
        self.metrics.stop_exporter()
        if self.store is not None and self._own_store:
            self.store.close()  # a store handed in by the caller is the caller's to close

    # -- messages ------------------------------------------------------------------------------
    def on_server_event_message(self, message: ServerEventMessage) -> None:
        event = message.event
        if isinstance(event, LogLine):
            self._server_log((event.text,))
            return
        if isinstance(event, StateChanged) and event.state is ServerState.STARTING:
            self._server_log((run_divider(event.profile, event.at),))  # each run its own section
        if isinstance(event, StateChanged) and event.detail and self.serving.attached:
            self.notify(f"{self.serving.url}: {event.detail}", severity="warning", timeout=10)
        self.serving = after_event(self.serving, event, self.config.profiles if self.config else {})
        if isinstance(event, StateChanged) and event.state is ServerState.STARTING:
            self.metrics.new_run(self.serving.profile)  # no figure of the last run under this one
        if isinstance(event, Ready):
            self.server.ready()
            if event.profile and self.switch is not None:
                self.switch.load_times[event.profile] = event.load_time_s
            if self.manager is not None:
                self.metrics.watch(event.pid, self.manager.profile, event.url)
        elif isinstance(event, Exited) and not event.expected:
            self.server.crashed(event, self.serving.profile)

    def on_server_failed(self, message: ServerFailed) -> None:
        first = message.text.splitlines()[0] if message.text else "failed"
        self.serving = replace(self.serving, detail=first)
        self._server_log(tuple(message.text.splitlines()))
        self.notify(first, severity="error", timeout=10)

    def on_port_taken(self, message: PortTaken) -> None:
        """Another coder-tui manages the port: its server is watched now, not managed."""
        self.switch = None
        self.serving = replace(self.serving, attached=True)

    def on_swap_report(self, message: SwapReport) -> None:
        profiles = self.config.profiles if self.config else {}
        self.serving, outcome = after_swap_event(self.serving, message.event, profiles)
        if outcome is not None:
            if outcome.log_lines:
                self._server_log(outcome.log_lines)
            self.notify(outcome.notice, severity=outcome.severity, timeout=outcome.timeout_s)

    def on_metrics_updated(self, message: MetricsUpdated) -> None:
        snap = message.snapshot
        saturated = self.metrics.take(snap, self.serving.profile, self.server.attached)
        if self.main is None:
            return
        if saturated is not None:  # no CPU core is idle now, or one is again: no cursor blink
            self.main.cpu_saturated = saturated
            self.main.sync_cursor_blink()
        if isinstance(self.screen, DashboardScreen):
            self.screen.show(snap)
        elif self.screen is self.main:
            self.main.show_metrics(snap)

    def on_fleet_updated(self, message: FleetUpdated) -> None:
        if isinstance(self.screen, DashboardScreen):
            self.screen.show_fleet(message.rows)

    @on(FleetTable.ChatWith)
    def _chat_with(self, message: FleetTable.ChatWith) -> None:
        """Point the chat at a remote server from the fleet view (or back at the local one)."""
        if self.main is None:
            return
        remote = self.fleet.remote_chat(message.name)
        self.main.remote = remote
        if remote is None:
            self.notify("chatting with this machine's server")
        else:
            self.notify(f"chatting with {remote.name} ({remote.url})")
        self.pop_screen()
