"""Attach mode: watch a llama-server that coder-tui did not start. It is never stopped from here.

Emits the same ``StateChanged``/``Ready`` events as ``ServerManager`` so the UI treats both alike.
While the metrics sampler already hears from the server (``seen_alive``, each tick), the watcher's
own ``/health`` probe waits: one request and two wake-ups of the app fewer every 2 s, which counts
while the model has every core. A sampler that stops hearing (``seen_down``) makes it probe at
once.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable

import httpx

from coder_tui.core.connections import server_http
from coder_tui.core.server.events import Ready, ServerEvent, ServerState, StateChanged
from coder_tui.core.server.health import Health

Listener = Callable[[ServerEvent], None]


async def _probe(client: httpx.AsyncClient, url: str) -> tuple[Health, str]:
    """``/health`` once, and what went wrong in words when it did not answer 200 or 503."""
    try:
        resp = await client.get(f"{url}/health", timeout=2.0)
    except httpx.HTTPError as exc:
        return Health.DOWN, _reason(exc)
    if resp.status_code == 200:
        return Health.READY, ""
    if resp.status_code == 503:
        return Health.LOADING, ""
    return Health.ERROR, f"/health answered HTTP {resp.status_code}"


def _reason(exc: httpx.HTTPError) -> str:
    """``connection refused``, ``timed out``... from an httpx error (its text can be empty)."""
    text = str(exc).strip()
    if "refused" in text.lower() or "connection attempts failed" in text.lower():
        return "connection refused (no server listens there)"
    if isinstance(exc, httpx.TimeoutException):
        return "no answer within 2 s"
    return text.splitlines()[0] if text else type(exc).__name__


QUIET_S = 10.0
"""While the sampler hears from a ready server, its own probe comes this often (seconds)."""


class AttachedServer:
    """A server at ``url`` that someone else runs; coder-tui only looks at it."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.state = ServerState.UNREACHABLE
        self.profile_name: str | None = None
        self.pid: int | None = None
        self.load_time_s: float | None = None
        self.log_lines: deque[str] = deque(maxlen=10)
        self._listeners: list[Listener] = []
        self._alive_at = -math.inf
        self._poke = asyncio.Event()
        self._detail = ""

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _emit(self, event: ServerEvent) -> None:
        for listener in list(self._listeners):
            listener(event)

    async def check(self, client: httpx.AsyncClient, retry_s: float = 2.0) -> ServerState:
        """Probe once; emit ``StateChanged`` (and ``Ready``) when the state or, for a server that
        cannot be reached, the reason changes (so the first probe always says where it stands)."""
        health, reason = await _probe(client, self.url)
        state = {
            Health.READY: ServerState.READY,
            Health.LOADING: ServerState.LOADING,
        }.get(health, ServerState.UNREACHABLE)
        detail = ""
        if state is ServerState.UNREACHABLE:
            what = "cannot connect" if health is Health.DOWN else "not healthy"
            detail = f"{what}: {reason}; retrying every {retry_s:g} s"
        if state is not self.state or detail != self._detail:  # the first probe too: no
            self.state, self._detail = state, detail  # detail before it, one after
            self._emit(StateChanged(state, self.profile_name, time.time(), detail))
            if state is ServerState.READY:
                self._emit(Ready(self.profile_name, self.url, None, 0.0))
        return state

    def seen_alive(self) -> None:
        """Someone else (the metrics sampler) just had an answer from the server."""
        self._alive_at = time.monotonic()

    def seen_down(self) -> None:
        """Someone else could not reach the server: probe now."""
        self._alive_at = -math.inf
        self._poke.set()

    async def watch(
        self,
        interval_s: float = 2.0,
        quiet_s: float = QUIET_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Probe forever (until cancelled) every ``interval_s`` seconds; while the server is
        ready and ``seen_alive`` keeps coming, only every ``quiet_s``."""
        async with server_http(transport=transport) as client:
            while True:
                heard = time.monotonic() - self._alive_at < quiet_s  # ticks every 1-4 s
                if not (heard and self.state is ServerState.READY):
                    await self.check(client, interval_s)
                    heard = False
                self._poke.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._poke.wait(), quiet_s if heard else interval_s)
