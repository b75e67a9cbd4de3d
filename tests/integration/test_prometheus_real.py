"""Acceptance: a real Prometheus scrapes ``coder-tui export`` watching a real llama-server.

Starts the demo server (``ServerManager``), the exporter as a subprocess (``--url`` mode, with the
demo config so the profile is recognised from ``/props``), and Debian's ``prometheus`` binary on
loopback with a 1 s scrape of the exporter; keeps the server generating, then asks Prometheus's
HTTP API for tokens/s, VRAM (or ``gpu_available == 0`` without a GPU) and CPU-MoE RAM traffic
with the profile's labels. Everything is stopped in ``finally``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from coder_tui.core.config.loader import Config
from coder_tui.core.demo.build import DemoResult
from coder_tui.core.server.ports import free_port
from coder_tui.core.server.process import ServerManager

pytestmark = pytest.mark.integration

CLI = (
    "import sys, coder_tui.__main__ as m; m.EXTRA_COMMANDS = ('export',); "
    "sys.exit(m.main(sys.argv[1:]))"
)
WANT = {"profile": "q4_k_m", "model": "demo-small-Q4_K_M", "quant": "Q4_K_M", "ngl": "99"}


def _prometheus() -> str:
    found = shutil.which("prometheus")
    if found is None:
        if os.environ.get("CODER_TUI_REQUIRE_SERVER"):
            pytest.fail("prometheus not found (scripts/install_prometheus.sh installs it)")
        pytest.skip("prometheus not installed")
    return found


async def _keep_generating(url: str) -> None:
    """Back-to-back requests of 512 tokens until cancelled (the small model is quick)."""
    body = {
        "messages": [{"role": "user", "content": "write a function"}],
        "max_tokens": 512,
        "ignore_eos": True,
    }
    async with httpx.AsyncClient(base_url=url, timeout=60, trust_env=False) as client:
        while True:
            await client.post("/v1/chat/completions", json=body)


async def _query(client: httpx.AsyncClient, expr: str) -> list[dict[str, Any]]:
    resp = await client.get("/api/v1/query", params={"query": expr})
    data = resp.json()
    assert data["status"] == "success", data
    result: list[dict[str, Any]] = data["data"]["result"]
    return result


async def _wait_for(client: httpx.AsyncClient, expr: str, deadline: float) -> list[dict[str, Any]]:
    while True:
        # Prometheus answers 503 "Service Unavailable" (not JSON) until it is ready.
        with contextlib.suppress(httpx.HTTPError, ValueError):
            result = await _query(client, expr)
            if result:
                return result
        if time.monotonic() > deadline:
            raise AssertionError(f"no result for {expr!r} in time")
        await asyncio.sleep(0.5)


def _stop(proc: subprocess.Popen[bytes] | None) -> str:
    if proc is None:
        return ""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    out = proc.stdout.read() if proc.stdout else b""
    return out.decode("utf-8", "replace")[-3000:]


async def test_prometheus_scrapes_tokens_vram_and_moe_traffic(
    demo: DemoResult, demo_config: Config, tmp_path: Path
) -> None:
    prometheus = _prometheus()
    mgr = ServerManager(demo_config.server, log_dir=tmp_path / "logs")
    exp_port, prom_port = free_port(), free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 2s\n  scrape_timeout: 2s\n"
        "scrape_configs:\n  - job_name: coder-tui\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{exp_port}']\n"
    )
    exporter = prom = None
    load: asyncio.Task[None] | None = None
    logs = ""
    try:
        await mgr.start(demo_config.profile("q4_k_m"))
        argv = ["export", "--listen", f"127.0.0.1:{exp_port}", "--url", mgr.url]
        argv += ["--config", str(demo.config_path), "--interval", "0.5"]
        exporter = subprocess.Popen(
            [sys.executable, "-c", CLI, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        prom = subprocess.Popen(
            [
                prometheus,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                "--log.level=warn",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        load = asyncio.create_task(_keep_generating(mgr.url))
        deadline = time.monotonic() + 60  # generous: CI shares 2 cores
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{prom_port}", timeout=5, trust_env=False
        ) as client:
            # A few scrapes of a live exporter before looking at the values.
            await _wait_for(client, 'count_over_time(up{job="coder-tui"}[1m]) >= 3', deadline)
            [up] = await _query(client, 'up{job="coder-tui"}')
            assert up["value"][1] == "1"

            expr = "max_over_time(coder_tui_server_generation_tokens_per_second[1m]) > 0"
            [tokens] = await _wait_for(client, expr, deadline)
            assert WANT.items() <= tokens["metric"].items(), tokens
            assert float(tokens["value"][1]) > 0

            expr = "max_over_time(coder_tui_moe_ram_read_bytes_per_second[1m]) > 0"
            [moe] = await _wait_for(client, expr, deadline)
            assert WANT.items() <= moe["metric"].items(), moe

            [kv] = await _wait_for(client, "coder_tui_server_kv_fill_ratio", deadline)
            assert 0 <= float(kv["value"][1]) <= 1

            [gpu] = await _wait_for(client, "coder_tui_gpu_available", deadline)
            vram = await _query(client, "coder_tui_gpu_memory_used_bytes")
            if gpu["value"][1] == "0":
                assert vram == []
            else:
                assert vram and all("gpu" in v["metric"] for v in vram)
                assert all(float(v["value"][1]) > 0 for v in vram)
    finally:
        if load is not None:
            load.cancel()
            await asyncio.gather(load, return_exceptions=True)
        logs = _stop(exporter) + _stop(prom)
        await mgr.stop()
    assert exporter is not None and exporter.returncode == 0, logs


async def test_export_cli_starts_a_profile_and_stops_it_on_sigterm(
    demo: DemoResult, demo_config: Config, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    text = demo.config_path.read_text(encoding="utf-8")
    port = demo_config.server.port
    config.write_text(re.sub(r"(?m)^port = \d+$", f"port = {port}", text), encoding="utf-8")
    exp_port = free_port()
    argv = ["export", "--config", str(config), "--start", "q8_0"]
    argv += ["--listen", f"127.0.0.1:{exp_port}", "--interval", "0.25"]
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI, *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    logs = ""
    try:
        deadline = time.monotonic() + 30
        text = ""
        async with httpx.AsyncClient(timeout=2, trust_env=False) as client:
            while "coder_tui_server_up{" not in text or "} 1.0" not in text:
                assert time.monotonic() < deadline and proc.poll() is None, "exporter not up"
                await asyncio.sleep(0.25)
                with contextlib.suppress(httpx.HTTPError):
                    text = (await client.get(f"http://127.0.0.1:{exp_port}/metrics")).text
        assert 'profile="q8_0"' in text and 'quant="Q8_0"' in text
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    finally:
        logs = _stop(proc)
    assert proc.returncode == 0, logs
    assert "q8_0 ready at" in logs
    with pytest.raises(httpx.HTTPError):  # the server was stopped with the exporter
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2, trust_env=False)
