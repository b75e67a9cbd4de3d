"""The Textual App: owns the server service, turns its events into messages, hosts the screens.

Services start in ``on_mount`` and stop in ``on_unmount``; widgets get data through attributes and
never touch the services. I/O runs in workers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import ClassVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Header

from coder_tui import __version__
from coder_tui.core.config import Config
from coder_tui.core.errors import UserError
from coder_tui.core.paths import app_paths
from coder_tui.core.server.attach import AttachedServer
from coder_tui.core.server.events import Exited, LogLine, Ready, ServerEvent, StateChanged
from coder_tui.core.server.process import ServerManager
from coder_tui.ui.messages import ServerEventMessage, ServerFailed
from coder_tui.ui.widgets.server_bar import ServerBar
from coder_tui.ui.widgets.server_log import ServerLog


class CoderApp(App[int]):
    """coder-tui's main window."""

    CSS_PATH = "app.tcss"
    TITLE = "coder-tui"
    SUB_TITLE = __version__
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "start", "Start"),
        Binding("x", "stop", "Stop"),
        Binding("r", "restart", "Restart"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        config: Config | None,
        *,
        profile_name: str | None = None,
        attach_url: str | None = None,
        autostart: bool = True,
    ) -> None:
        super().__init__()
        self.config = config
        self.attach_url = attach_url
        self.autostart = autostart
        self.profile_name = profile_name
        self.manager: ServerManager | None = None
        self.attached: AttachedServer | None = None
        self._unlisten: Callable[[], None] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield ServerBar(id="server-bar")
        yield ServerLog(id="server-log")
        yield Footer()

    def on_mount(self) -> None:
        bar = self.query_one(ServerBar)
        if self.attach_url:
            self.attached = AttachedServer(self.attach_url)
            self.attached.add_listener(self._forward)
            bar.url = self.attached.url
            bar.profile = "attached"
            bar.state = self.attached.state
            self._watch_attached()
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
            self.config.server, log_dir=paths.log_dir, cache_dir=paths.cache_dir
        )
        self._unlisten = self.manager.add_listener(self._forward)
        bar.profile = profile.name
        bar.url = self.manager.url
        if self.autostart:
            self.action_start()

    def _forward(self, event: ServerEvent) -> None:
        self.post_message(ServerEventMessage(event))

    # -- workers -------------------------------------------------------------------------------
    @work(exclusive=True, group="server", exit_on_error=False)
    async def _start(self) -> None:
        if self.manager is None or self.config is None:
            return
        try:
            await self.manager.start(self.config.profile(self.profile_name))
        except UserError as exc:
            self.post_message(ServerFailed(str(exc)))

    @work(exclusive=True, group="server", exit_on_error=False)
    async def _stop(self, then_start: bool = False) -> None:
        if self.manager is None:
            return
        await self.manager.stop()
        if then_start and self.config is not None:
            try:
                await self.manager.start(self.config.profile(self.profile_name))
            except UserError as exc:
                self.post_message(ServerFailed(str(exc)))

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

    async def action_quit(self) -> None:
        await self._stop_services()
        self.exit(0)

    async def _stop_services(self) -> None:
        self.workers.cancel_group(self, "server")
        if self.manager is not None:
            with contextlib.suppress(Exception):
                await self.manager.stop()

    async def on_unmount(self) -> None:
        # Widgets are gone by now: stop forwarding events before the final stop.
        if self._unlisten is not None:
            self._unlisten()
        await self._stop_services()

    # -- messages ------------------------------------------------------------------------------
    def on_server_event_message(self, message: ServerEventMessage) -> None:
        event = message.event
        bar = self.query_one(ServerBar)
        if isinstance(event, LogLine):
            self.query_one(ServerLog).add_lines([event.text])
        elif isinstance(event, StateChanged):
            bar.state = event.state
            if event.profile:
                bar.profile = event.profile
        elif isinstance(event, Ready):
            bar.load_time_s = event.load_time_s
            bar.detail = ""
        elif isinstance(event, Exited) and not event.expected:
            bar.detail = event.reason
            self.notify(f"llama-server {event.reason}", severity="error", timeout=10)

    def on_server_failed(self, message: ServerFailed) -> None:
        first = message.text.splitlines()[0] if message.text else "failed"
        self.query_one(ServerBar).detail = first
        self.query_one(ServerLog).add_lines(message.text.splitlines())
        self.notify(first, severity="error", timeout=10)
