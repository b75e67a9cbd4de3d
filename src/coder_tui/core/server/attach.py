"""Attach mode: watch a llama-server that coder-tui did not start. It is never stopped from here.

Emits the same ``StateChanged``/``Ready`` events as ``ServerManager`` so the UI treats both alike.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

import httpx

from coder_tui.core.server.events import Ready, ServerEvent, ServerState, StateChanged
from coder_tui.core.server.health import Health, probe

Listener = Callable[[ServerEvent], None]


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

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _emit(self, event: ServerEvent) -> None:
        for listener in list(self._listeners):
            listener(event)

    async def check(self, client: httpx.AsyncClient) -> ServerState:
        """Probe once; emit ``StateChanged`` (and ``Ready``) when the state changes."""
        health = await probe(client, self.url)
        state = {
            Health.READY: ServerState.READY,
            Health.LOADING: ServerState.LOADING,
        }.get(health, ServerState.UNREACHABLE)
        if state is not self.state:
            self.state = state
            self._emit(StateChanged(state, self.profile_name, time.time()))
            if state is ServerState.READY:
                self._emit(Ready(self.profile_name, self.url, None, 0.0))
        return state

    async def watch(self, interval_s: float = 2.0) -> None:
        """Probe forever (until cancelled) every ``interval_s`` seconds."""
        async with httpx.AsyncClient(trust_env=False) as client:
            while True:
                await self.check(client)
                await asyncio.sleep(interval_s)
