"""Readiness of a llama-server: ``/health`` answers 200 when ready, 503 while the model loads.

Owns only the HTTP side of readiness; the process side (is it alive?) is passed in by the caller.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable

import httpx


class Health(enum.Enum):
    READY = "ready"
    LOADING = "loading"
    DOWN = "down"
    ERROR = "error"


async def probe(client: httpx.AsyncClient, base_url: str, timeout_s: float = 2.0) -> Health:
    """One look at ``/health``: READY (200), LOADING (503), DOWN (no connection), ERROR (else)."""
    try:
        resp = await client.get(f"{base_url}/health", timeout=timeout_s)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadError, httpx.RemoteProtocolError):
        return Health.DOWN
    except httpx.HTTPError:
        return Health.ERROR
    if resp.status_code == 200:
        return Health.READY
    if resp.status_code == 503:
        return Health.LOADING
    return Health.ERROR


class NotReady(Exception):
    """The server did not become ready: it exited, or the timeout passed."""


async def wait_ready(
    client: httpx.AsyncClient,
    base_url: str,
    *,
    alive: Callable[[], bool],
    timeout_s: float,
    interval_s: float = 0.05,
    on_loading: Callable[[], None] | None = None,
) -> float:
    """Poll ``/health`` until 200; return the seconds waited. Raises ``NotReady``.

    Polls every 50 ms: a swap's overhead beyond the server's own load time stays small, and a
    refused connection costs microseconds.
    """
    start = time.monotonic()
    seen_loading = False
    while True:
        if not alive():
            raise NotReady("exited")
        state = await probe(client, base_url, timeout_s=min(2.0, max(timeout_s, 0.1)))
        if state is Health.READY:
            return time.monotonic() - start
        if state is Health.LOADING and not seen_loading:
            seen_loading = True
            if on_loading is not None:
                on_loading()
        if time.monotonic() - start > timeout_s:
            raise NotReady("timeout")
        await asyncio.sleep(interval_s)
