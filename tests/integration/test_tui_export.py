"""`coder-tui --export`: the TUI serves its own samples to Prometheus (no second sampler)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from coder_tui.core.config.loader import Config
from coder_tui.core.exporter.http import PrometheusExporter
from coder_tui.core.server.ports import free_port
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui.app import CoderApp


async def test_tui_serves_its_metrics(demo_config: Config, tmp_path: Path) -> None:
    exporter = PrometheusExporter("127.0.0.1", free_port())
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        app = CoderApp(demo_config, store=store, exporter=exporter)
        async with app.run_test(size=(120, 40)) as pilot:
            for _ in range(300):
                if app.metrics.last is not None and app.main is not None and app.main.server_ready:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.5)
            async with httpx.AsyncClient(trust_env=False) as client:
                text = (await client.get(exporter.url)).text
            assert "coder_tui_gpu_available 0.0" in text
            assert 'profile="q4_k_m"' in text
            assert "coder_tui_server_up" in text
            await pilot.press("ctrl+q")
    async with httpx.AsyncClient(trust_env=False) as client:
        try:
            await client.get(exporter.url, timeout=1)
            stopped = False
        except httpx.HTTPError:
            stopped = True
    assert stopped, "the exporter outlived the app"
