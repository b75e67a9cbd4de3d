"""Server control for the App: start, stop, restart, a leftover server, attach, signals.

A mixin of ``CoderApp`` (``ui/app.py``): the App owns the services; these are its actions and
workers that drive ``ServerManager`` and report through messages and notifications.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time

from textual import work

from coder_tui.core.errors import UserError
from coder_tui.core.server.attach import AttachedServer
from coder_tui.core.server.ownership import stop_leftover
from coder_tui.core.server.process import LeftoverServer, PortOwned
from coder_tui.ui.app_base import AppBase
from coder_tui.ui.messages import ServerFailed
from coder_tui.ui.screens.confirm import ConfirmScreen
from coder_tui.ui.widgets.server_bar import ServerBar

BACKSTOP_S = 15.0
"""After SIGHUP/SIGTERM, exit hard (status 1) if the server is not stopped by then."""
STUCK_AFTER_STOP_S = 3.0
"""After SIGHUP/SIGTERM, once the server is stopped, exit (status 0) if the UI has not finished
its own shutdown this much later (writes to a vanished terminal can stall it)."""


class ServerActions(AppBase):
    """Start/stop/restart workers and actions, leftover handling, attach, signal handlers."""

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
        # The terminal may already be gone (SSH dropped): Textual's writes can then fail or stall,
        # so the exit is judged by whether the server was stopped, and a thread makes sure the
        # process ends even if the UI cannot finish its own shutdown on a dead terminal.
        self.terminated_by_signal = True
        manager = self.manager

        def backstop() -> None:
            deadline = time.monotonic() + BACKSTOP_S
            stopped_at: float | None = None
            while time.monotonic() < deadline:
                time.sleep(0.2)
                if stopped_at is None and (manager is None or not manager.running):
                    stopped_at = time.monotonic()
                if stopped_at is not None and time.monotonic() - stopped_at > STUCK_AFTER_STOP_S:
                    os._exit(0)  # the server is stopped; only the dead terminal held us up
            os._exit(1)

        threading.Thread(target=backstop, daemon=True, name="exit-backstop").start()
        self.call_later(self.action_quit)

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

    def _after_crash(self) -> None:
        """A server that crashed is restarted automatically, within the restart budget."""
        if not self.auto_restart or self.manager is None:
            return
        delay = self.restart_policy.next_delay()
        if delay is None:
            self.notify(self.restart_policy.refusal(), severity="error", timeout=20)
            return
        self.restart_policy.record()
        self.notify(f"restarting llama-server in {delay:g} s")
        self.set_timer(delay, self._start)
