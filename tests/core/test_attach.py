"""The attach watcher: probes /health on its own, and waits while the metrics sampler hears the
server (one request and two app wake-ups fewer every 2 s); a sampler that stops hearing makes it
probe at once."""

from __future__ import annotations

import asyncio

import httpx

from coder_tui.core.server.attach import AttachedServer
from coder_tui.core.server.events import ServerEvent, ServerState, StateChanged


class Health:
    def __init__(self) -> None:
        self.status = 200
        self.probes = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/health"
        self.probes += 1
        return httpx.Response(self.status, json={})


async def test_watcher_probes_every_interval_without_a_sampler() -> None:
    health = Health()
    server = AttachedServer("http://test:8080")
    task = asyncio.create_task(server.watch(0.05, 10.0, httpx.MockTransport(health)))
    await asyncio.sleep(0.32)
    task.cancel()
    assert server.state is ServerState.READY
    assert 5 <= health.probes <= 8


async def test_watcher_waits_while_the_sampler_hears_and_probes_when_it_does_not() -> None:
    health = Health()
    server = AttachedServer("http://test:8080")
    events: list[ServerEvent] = []
    server.add_listener(events.append)
    task = asyncio.create_task(server.watch(0.05, 10.0, httpx.MockTransport(health)))
    await asyncio.sleep(0.02)
    assert health.probes == 1 and server.state is ServerState.READY
    for _ in range(8):  # the sampler hears the server every 0.05 s: no probe of its own
        server.seen_alive()
        await asyncio.sleep(0.05)
    assert health.probes <= 2
    health.status = 503  # the server reloads; the sampler sees it first
    server.seen_down()
    await asyncio.sleep(0.02)
    assert server.state is ServerState.LOADING
    assert [e.state for e in events if isinstance(e, StateChanged)][-1] is ServerState.LOADING
    quiet = health.probes
    await asyncio.sleep(0.2)  # not heard any more: every interval again
    assert health.probes >= quiet + 3
    task.cancel()


async def test_an_unreachable_server_says_why_and_when_it_is_tried_again() -> None:
    """``--attach http://127.0.0.1:1``: the first probe already reports the state (it used to
    stay silent, leaving the bar at ``● stopped``), with the reason and the retry."""
    server = AttachedServer("http://127.0.0.1:1")
    events: list[ServerEvent] = []
    server.add_listener(events.append)
    task = asyncio.create_task(server.watch(0.05, 10.0))
    await asyncio.sleep(0.3)
    task.cancel()
    changes = [e for e in events if isinstance(e, StateChanged)]
    assert len(changes) == 1, changes  # said once, not at every retry
    assert changes[0].state is ServerState.UNREACHABLE
    assert "cannot connect: connection refused" in changes[0].detail
    assert "retrying every 0.05 s" in changes[0].detail
