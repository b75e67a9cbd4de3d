"""Acceptance: the fleet poller watching two real llama-servers, one of them stopped midway."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

import pytest

from coder_tui.core.config.loader import Config
from coder_tui.core.metrics.fleet import FleetPoller, FleetRow, Remote
from coder_tui.core.metrics.types import ServerPhase
from coder_tui.core.server.ports import free_port
from coder_tui.core.server.process import ServerManager

pytestmark = pytest.mark.integration


async def _poll_until(
    poller: FleetPoller, done: object, timeout_s: float = 15.0
) -> tuple[FleetRow, ...]:
    deadline = time.monotonic() + timeout_s
    while True:
        rows = await poller.poll_once()
        if done(rows):  # type: ignore[operator]
            return rows
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.2)


async def test_two_servers_one_stopped_midway(demo_config: Config, tmp_path: Path) -> None:
    a = ServerManager(demo_config.server, log_dir=tmp_path / "a")
    b_settings = replace(demo_config.server, port=free_port())
    b = ServerManager(b_settings, log_dir=tmp_path / "b")
    assert a.url != b.url
    poller = FleetPoller(
        [Remote("alpha", a.url), Remote("beta", b.url)], interval_s=0.2, timeout_s=2.0
    )
    try:
        await asyncio.gather(
            a.start(demo_config.profile("q4_k_m")), b.start(demo_config.profile("q8_0"))
        )
        rows = await _poll_until(poller, lambda rs: all(r.up and r.model for r in rs))
        alpha, beta = rows
        assert alpha.model == "demo-small-Q4_K_M.gguf" and beta.model == "demo-small-Q8_0.gguf"
        assert alpha.n_ctx == 4096 and alpha.phase is ServerPhase.IDLE
        assert alpha.error is None and beta.error is None

        await b.stop()
        rows = await _poll_until(poller, lambda rs: not rs[1].up)
        alpha, beta = rows
        assert alpha.up and alpha.error is None
        assert beta.phase is ServerPhase.DOWN and beta.error is not None
        assert beta.last_error == beta.error and beta.model == "demo-small-Q8_0.gguf"
        assert beta.generation_tokens_per_s is None and beta.kv_fill_ratio is None

        # It keeps polling the dead one without raising.
        for _ in range(3):
            rows = await poller.poll_once()
            assert rows[0].up and not rows[1].up
    finally:
        await poller.aclose()
        await asyncio.gather(a.stop(), b.stop())
