"""The Textual App: owns the services (server, history store), routes their events to the screen.

Services start in ``on_mount`` and stop in ``on_unmount``; screens and widgets get data through
attributes and messages and never touch the services' internals. I/O runs in workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from contextlib import aclosing
from typing import ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType

from coder_tui import __version__
from coder_tui.core.config import ChatSettings, Config, Profile
from coder_tui.core.errors import UserError
from coder_tui.core.metrics.bus import MetricsSampler
from coder_tui.core.metrics.gpu import GpuProbe
from coder_tui.core.metrics.types import MetricsSnapshot
from coder_tui.core.paths import app_paths
from coder_tui.core.profile_info import profile_info
from coder_tui.core.server.attach import AttachedServer
from coder_tui.core.server.events import (
    Exited,
    LogLine,
    Ready,
    ServerEvent,
    ServerState,
    StateChanged,
)
from coder_tui.core.server.ownership import stop_leftover
from coder_tui.core.server.process import LeftoverServer, PortOwned, ServerManager
from coder_tui.core.server.swap import SwapEvent, Swapper, SwapProgress, SwapResult
from coder_tui.core.store import HistoryStore
from coder_tui.ui.messages import MetricsUpdated, ServerEventMessage, ServerFailed
from coder_tui.ui.screens.confirm import ConfirmScreen
from coder_tui.ui.screens.dashboard import DashboardScreen
from coder_tui.ui.screens.main import MainScreen
from coder_tui.ui.screens.profiles import ProfilesScreen, diff_text
from coder_tui.ui.widgets.server_bar import ServerBar
from coder_tui.ui.widgets.server_log import ServerLog

BACKSTOP_S = 15.0
"""After SIGHUP/SIGTERM, exit hard if a clean stop has not finished by then."""


class CoderApp(App[int]):
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
        Binding("s", "start", "Start", show=False),
        Binding("x", "stop", "Stop", show=False),
        Binding("r", "restart", "Restart", show=False),
        Binding("ctrl+q,q", "quit", "Quit", key_display="^q"),
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
        self.main: MainScreen | None = None
        self.swapper: Swapper | None = None
        self.load_times: dict[str, float] = {}
        self.sampler: MetricsSampler | None = None
        self.last_metrics: MetricsSnapshot | None = None
        self._unlisten: Callable[[], None] | None = None

    async def on_mount(self) -> None:
        if self.store is None:
            try:
                self.store = HistoryStore(app_paths().history_db)
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
        self._unlisten = self.manager.add_listener(self._forward)
        self.swapper = Swapper(self.manager, gpu=GpuProbe())
        self.main.profile = profile
        self.main.server_url = bar.url = self.manager.url
        bar.profile = profile.name
        if self.sample_metrics:
            self._sample_metrics(self.manager.url)
        if self.autostart:
            self.action_start()

    def _forward(self, event: ServerEvent) -> None:
        self.post_message(ServerEventMessage(event))

    # -- workers -------------------------------------------------------------------------------
    @work(exclusive=True, group="server", exit_on_error=False)
    async def _start(self) -> None:
        await self._start_now()

    @work(exclusive=True, group="server", exit_on_error=False)
    async def _stop(self, then_start: bool = False) -> None:
        if self.manager is None:
            return
        await self.manager.stop()
        if then_start:
            await self._start_now()

    async def _start_now(self) -> None:
        if self.manager is None or self.config is None:
            return
        try:
            await self.manager.start(self.config.profile(self.profile_name))
        except LeftoverServer as exc:
            self.call_later(self._offer_stop_leftover, exc)
        except PortOwned as exc:
            self.notify(f"{exc}: attaching read-only", severity="warning", timeout=10)
            self.call_later(self._attach_instead)
        except UserError as exc:
            self.post_message(ServerFailed(str(exc)))

    def _offer_stop_leftover(self, exc: LeftoverServer) -> None:
        async def answer(yes: bool | None) -> None:
            if yes and self.manager is not None and self.manager.run_dir is not None:
                run_dir = self.manager.run_dir
                await asyncio.to_thread(stop_leftover, exc.record, run_dir)
                self._start()
            else:
                self.post_message(ServerFailed(f"{exc}; not started"))

        self.push_screen(ConfirmScreen(f"{exc}.\n\nStop it and start this profile?"), answer)

    def _attach_instead(self) -> None:
        """Another coder-tui manages this port: watch its server without managing it."""
        if self.manager is None or self.main is None:
            return
        url = self.manager.url
        if self._unlisten is not None:
            self._unlisten()
        self.manager.close()
        self.manager = None
        self.attached = AttachedServer(url)
        self._unlisten = self.attached.add_listener(self._forward)
        self.main.query_one(ServerBar).profile = "attached"
        self._watch_attached()

    def _install_signal_handlers(self) -> None:
        """SIGHUP (SSH dropped) and SIGTERM: stop the server, then exit, with a hard backstop."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGHUP, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._on_terminate_signal)

    def _on_terminate_signal(self) -> None:
        def backstop() -> None:
            time.sleep(BACKSTOP_S)
            os._exit(1)

        threading.Thread(target=backstop, daemon=True, name="exit-backstop").start()
        self.call_later(self.action_quit)

    @work(exclusive=True, group="metrics", exit_on_error=False)
    async def _sample_metrics(self, url: str) -> None:
        self.sampler = MetricsSampler(url)
        if self.attached is not None:
            self.sampler.watch(pid=None, base_url=url)
        async with aclosing(self.sampler.run()) as snapshots:
            async for snap in snapshots:
                self.post_message(MetricsUpdated(snap))

    @work(exclusive=True, group="attach", exit_on_error=False)
    async def _watch_attached(self) -> None:
        if self.attached is not None:
            await self.attached.watch()

    # -- actions -------------------------------------------------------------------------------
    def action_start(self) -> None:
        if self.manager is None:
            self.notify("attached to a server started elsewhere: coder-tui does not start it")
            return
        if self.manager.running:
            self.notify("the server is already running")
            return
        self._start()

    def action_stop(self) -> None:
        if self.manager is None:
            self.notify("attached to a server started elsewhere: coder-tui never stops it")
            return
        self._stop()

    def action_restart(self) -> None:
        if self.manager is not None:
            self._stop(then_start=True)

    def action_profiles(self) -> None:
        if self.config is None or self.manager is None:
            self.notify("attached to a server started elsewhere: no profiles to swap")
            return
        self._open_profiles()

    @work(exclusive=True, group="profiles", exit_on_error=False)
    async def _open_profiles(self) -> None:
        assert self.config is not None and self.manager is not None
        profiles = self.config.profiles
        infos = {n: await asyncio.to_thread(profile_info, p) for n, p in profiles.items()}
        speeds = {n: self.store.last_speed(n) if self.store else None for n in profiles}
        screen = ProfilesScreen(profiles, infos, self.manager.profile, speeds, self.load_times)
        self.push_screen(screen, self._swap_to)

    def _swap_to(self, name: str | None) -> None:
        if name is None or self.config is None or self.manager is None:
            return
        if self.main is not None and self.main.generating:
            self.notify("a reply is streaming: Esc cancels it, then swap", severity="warning")
            return
        target = self.config.profile(name)
        current = self.manager.profile if self.manager.running else None
        question = f"Swap to {name}?\n\n{diff_text(current, target)}"

        def answer(yes: bool | None) -> None:
            if yes:
                self._swap(target)

        self.push_screen(ConfirmScreen(question), answer)

    @work(group="swap", exit_on_error=False)
    async def _swap(self, profile: Profile) -> None:
        if self.swapper is None or self.main is None:
            return
        bar = self.main.query_one(ServerBar)

        def progress(event: SwapEvent) -> None:
            if isinstance(event, SwapProgress):
                bar.detail = f"swap → {event.profile_to}: {event.phase.value}"

        result = await self.swapper.swap(profile, on_event=progress)
        self.after_swap(result)

    def after_swap(self, result: SwapResult) -> None:
        """Show how a swap ended; the chat carries on with whatever now serves."""
        if self.main is None or self.config is None:
            return
        bar = self.main.query_one(ServerBar)
        if result.profile is not None:
            self.profile_name = result.profile
            self.main.profile = self.config.profile(result.profile)
            bar.profile = result.profile
        if result.unchanged:
            bar.detail = ""
            self.notify(f"{result.requested}: same flags as the running server, nothing to do")
        elif result.ok:
            bar.detail = ""
            self.notify(f"now serving {result.profile} ({result.total_s:.1f} s)")
        else:
            bar.detail = (result.error or "swap failed").splitlines()[0]
            self.main.query_one(ServerLog).add_lines(list(result.log_tail))
            self.notify(result.error or "swap failed", severity="error", timeout=15)

    def action_compare(self) -> None:
        if self.config is None or self.manager is None or self.swapper is None:
            self.notify("compare needs profiles that coder-tui manages")
            return
        if self.main is not None and self.main.generating:
            self.notify("a reply is streaming: Esc cancels it first", severity="warning")
            return
        from coder_tui.ui.screens.compare import CompareScreen

        prompt = self.main.last_prompt() if self.main is not None else ""
        self.push_screen(
            CompareScreen(
                self.config.profiles,
                self.swapper,
                self.manager,
                prompt=prompt,
                on_swap=self.after_swap,
            )
        )

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
        screen = DashboardScreen()
        self.push_screen(screen)
        if self.last_metrics is not None:
            self.call_after_refresh(screen.show, self.last_metrics)

    async def action_quit(self) -> None:
        await self._stop_services()
        self.exit(0)

    async def _stop_services(self) -> None:
        self.workers.cancel_group(self, "server")
        self.workers.cancel_group(self, "metrics")
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
        if self.store is not None:
            self.store.close()

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
            if event.profile:
                self.load_times[event.profile] = event.load_time_s
            bar.detail = ""
            if self.sampler is not None and self.manager is not None:
                self.sampler.watch(pid=event.pid, profile=self.manager.profile, base_url=event.url)
        elif isinstance(event, Exited) and not event.expected:
            bar.detail = event.reason
            self.notify(f"llama-server {event.reason}", severity="error", timeout=10)

    def on_metrics_updated(self, message: MetricsUpdated) -> None:
        self.last_metrics = message.snapshot
        if isinstance(self.screen, DashboardScreen):
            self.screen.show(message.snapshot)
        elif self.main is not None and self.screen is self.main:
            self.main.show_metrics(message.snapshot)

    def on_server_failed(self, message: ServerFailed) -> None:
        if self.main is None:
            return
        first = message.text.splitlines()[0] if message.text else "failed"
        self.main.query_one(ServerBar).detail = first
        self.main.query_one(ServerLog).add_lines(message.text.splitlines())
        self.notify(first, severity="error", timeout=10)
