"""Server control for the App: the server it manages or watches, and what the keys do to it.

Owns ``ServerControl``: the ``ServerManager`` of a managed server (start, stop, restart, a leftover
server, restarts after a crash) or the ``AttachedServer`` watcher of one started elsewhere, which
it falls back to when another coder-tui manages the port. Their events go to the App as
``ServerEventMessage`` (the App turns them into its serving state); what a worker cannot settle
goes as ``ServerFailed``, and the fall-back to watching as ``PortTaken``. Also the exit on
SIGHUP/SIGTERM: the server is stopped, with a backstop thread in case the terminal is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

from textual.app import App
from textual.worker import Worker

from coder_tui.core.config.loader import Profile, ServerSettings
from coder_tui.core.errors import UserError
from coder_tui.core.paths import app_paths
from coder_tui.core.security import advisory_warning
from coder_tui.core.server.attach import AttachedServer
from coder_tui.core.server.events import Exited, ServerEvent
from coder_tui.core.server.ownership import stop_leftover
from coder_tui.core.server.process import LeftoverServer, PortOwned, ServerManager
from coder_tui.core.server.restart import RestartPolicy
from coder_tui.ui.messages import PortTaken, ServerEventMessage, ServerFailed
from coder_tui.ui.screens.confirm import ConfirmScreen

BACKSTOP_S = 15.0
"""After SIGHUP/SIGTERM, exit hard (status 1) if the server is not stopped by then."""
STUCK_AFTER_STOP_S = 3.0
"""After SIGHUP/SIGTERM, once the server is stopped, exit (status 0) if the UI has not finished
its own shutdown this much later (writes to a vanished terminal can stall it)."""


class ServerControl:
    """The managed server (``manager``) or the watched one (``attached``); at most one of them."""

    def __init__(self, app: App[Any], *, auto_restart: bool = True) -> None:
        self.app = app
        self.auto_restart = auto_restart
        self.restart_policy = RestartPolicy()
        self.manager: ServerManager | None = None
        self.attached: AttachedServer | None = None
        self._unlisten: Callable[[], None] | None = None

    def manage(self, settings: ServerSettings, *, keep_server: bool = False) -> ServerManager:
        """Manage this app's server, its logs, cache and run records in the app's folders
        (``keep_server``: it may outlive the app, ``--keep-server``)."""
        paths = app_paths()
        self.manager = ServerManager(
            settings,
            log_dir=paths.log_dir,
            cache_dir=paths.cache_dir,
            run_dir=paths.run_dir,
            keep_on_exit=keep_server,
        )
        self._unlisten = self.manager.add_listener(self._forward)
        return self.manager

    def attach(self, url: str) -> AttachedServer:
        """Watch the server at ``url``, started elsewhere; it is never started or stopped here."""
        self.attached = attached = AttachedServer(url)
        self._unlisten = attached.add_listener(self._forward)
        self._watch(attached)
        return attached

    def _watch(self, attached: AttachedServer) -> Worker[None]:
        return self.app.run_worker(
            partial(attached.watch), group="attach", exclusive=True, exit_on_error=False
        )

    def _forward(self, event: ServerEvent) -> None:
        """Server events (from any thread or task) become messages to the App."""
        self.app.post_message(ServerEventMessage(event))

    def unlisten(self) -> None:
        """Forward no more events (the screens are gone)."""
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None

    # -- what the keys ask ---------------------------------------------------------------------
    def start(self, profile: Profile | None) -> None:
        if self.manager is None or profile is None:
            self.app.notify("attached to a server started elsewhere: coder-tui does not start it")
        elif self.manager.running:
            self.app.notify("the server is already running")
        else:
            self._work(self._start_now, profile)

    def stop(self) -> None:
        if self.manager is None:
            self.app.notify("attached to a server started elsewhere: coder-tui never stops it")
        else:
            self._work(self._stop, None)

    def restart(self, profile: Profile | None) -> None:
        if self.manager is not None and profile is not None:
            self._work(self._stop, profile)

    # -- what the server does ------------------------------------------------------------------
    def ready(self) -> None:
        """A server became ready: say so if its build predates known security fixes."""
        advisory = advisory_warning(self.manager.version or "") if self.manager else None
        if advisory:
            self.app.notify(advisory, severity="warning", timeout=15)

    def crashed(self, event: Exited, profile: Profile | None) -> None:
        """The server exited unasked: say why; start ``profile`` again within the budget."""
        self.app.notify(f"llama-server {event.reason}", severity="error", timeout=10)
        if not self.auto_restart or self.manager is None or profile is None:
            return
        delay = self.restart_policy.next_delay()
        if delay is None:
            self.app.notify(self.restart_policy.refusal(), severity="error", timeout=20)
            return
        self.restart_policy.record()
        self.app.notify(f"restarting llama-server in {delay:g} s")
        self.app.set_timer(delay, partial(self._work, self._start_now, profile))

    async def shutdown(self) -> None:
        """Stop the server as the app ends; under ``--keep-server`` it is left running on purpose
        (its record kept, so a later start finds it)."""
        manager = self.manager
        if manager is None:
            return
        if manager.keep_on_exit and manager.running:
            manager.detach()
            return
        with contextlib.suppress(Exception):
            await manager.stop()
        manager.close()

    # -- workers (group ``server``) ------------------------------------------------------------
    def _work(
        self, job: Callable[[Any], Coroutine[Any, Any, None]], profile: Profile | None
    ) -> Worker[None]:
        """One job at a time: a new one cancels the one in flight (as ``@work(exclusive=True)``)."""
        return self.app.run_worker(
            partial(job, profile), group="server", exclusive=True, exit_on_error=False
        )

    async def _stop(self, then_start: Profile | None) -> None:
        if self.manager is not None:
            await self.manager.stop()
            if then_start is not None:
                await self._start_now(then_start)

    async def _start_now(self, profile: Profile) -> None:
        if self.manager is None:  # watching another coder-tui's server by now
            return
        try:
            await self.manager.start(profile)
        except LeftoverServer as exc:
            self.app.call_later(self._offer_stop_leftover, exc, profile)
        except PortOwned as exc:
            self.app.notify(f"{exc}: attaching read-only", severity="warning", timeout=10)
            self.app.call_later(self._attach_instead)
        except UserError as exc:
            self.app.post_message(ServerFailed(str(exc)))

    def _offer_stop_leftover(self, exc: LeftoverServer, profile: Profile) -> None:
        async def answer(yes: bool | None) -> None:
            run_dir = self.manager.run_dir if self.manager is not None else None
            if yes and run_dir is not None:
                await asyncio.to_thread(stop_leftover, exc.record, run_dir)
                self._work(self._start_now, profile)
            else:
                self.app.post_message(ServerFailed(f"{exc}; not started"))

        self.app.push_screen(ConfirmScreen(f"{exc}.\n\nStop it and start this profile?"), answer)

    def _attach_instead(self) -> None:
        """Another coder-tui manages this port: watch its server without managing it."""
        if self.manager is None:
            return
        url = self.manager.url
        self.unlisten()
        self.manager.close()
        self.manager = None
        self.attach(url)
        self.app.post_message(PortTaken(url))


def install_exit_signals(handler: Callable[[], None]) -> None:
    """Call ``handler`` on SIGHUP (SSH dropped) and SIGTERM, in the running event loop."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGHUP, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, handler)


def start_exit_backstop(manager: ServerManager | None) -> None:
    """Make sure the process ends after a SIGHUP/SIGTERM even if the UI cannot finish.

    The terminal may already be gone (SSH dropped): Textual's writes can then fail or stall, so
    the exit is judged by whether the server was stopped: status 0 a little after it stopped, 1
    if it is still running after ``BACKSTOP_S``.
    """

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
