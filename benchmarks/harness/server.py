"""The bench server: a demo model served by llama-server for a guard, and one request to it.

``bench_config`` writes a coder-tui config for the demo model (generated under a temporary
folder) with the server's threads on every core by default, ``--ignore-eos`` so every reply
runs to its ``max_tokens``, and a free port. The same file serves the guard (``start_server``)
and the coder-tui processes it runs in terminals, so both see one server. ``generate`` sends the
fixed-length request the observer and the dashboard guard time.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import httpx
import tomli_w

from coder_tui.core.config.loader import load_config
from coder_tui.core.demo.build import prepare_demo
from coder_tui.core.server.ports import free_port
from coder_tui.core.server.process import ServerManager

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PROMPT = "Write a Python function that parses a CSV file."


def bench_config(
    tmp: Path,
    *,
    size: str = "bench",
    quant: str = "Q4_K_M",
    threads: int | None = None,
) -> tuple[Path, str]:
    """The demo model of ``size`` in ``quant`` (F16 needs no ``llama-quantize``), served with
    ``threads`` (default: every core) and ``--ignore-eos`` on a free port. Returns the config's
    path and the profile's name."""
    quants = () if quant.upper() == "F16" else (quant,)
    demo = prepare_demo(tmp / "demo", size, quants, port=free_port())
    name = quant.lower()
    doc = tomllib.loads(demo.config_path.read_text(encoding="utf-8"))
    profile = doc["profiles"][name]
    profile["threads"] = threads or os.cpu_count() or 1
    profile["extra_args"] = [*profile.get("extra_args", []), "--ignore-eos"]
    doc["profiles"] = {name: profile}
    doc["default_profile"] = name
    doc["server"]["port"] = free_port()
    path = tmp / "bench-config.toml"
    path.write_text(tomli_w.dumps(doc), encoding="utf-8")
    return path, name


async def start_server(config_path: Path, profile: str, tmp: Path) -> ServerManager:
    """The config's server, started on ``profile`` and warmed up with one short request."""
    config = load_config(config_path)
    mgr = ServerManager(config.server, log_dir=tmp / "server-logs")
    await mgr.start(config.profile(profile))
    await generate(mgr.url, 32)
    return mgr


async def generate(url: str, tokens: int, *, streamed: bool = False) -> float:
    """One request of exactly ``tokens`` tokens (temperature 0, no prompt cache), asked whole
    (``streamed``: streamed, its bytes read once a second as coder-tui reads a quiet reply);
    the server's own decode speed, ``timings.predicted_per_second``."""
    body = {
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": tokens,
        "ignore_eos": True,
        "temperature": 0,
        "cache_prompt": False,
    }
    async with httpx.AsyncClient(timeout=300, trust_env=False) as client:
        if streamed:
            return await read_streamed(client, f"{url}/v1/chat/completions", body)
        resp = await client.post(f"{url}/v1/chat/completions", json=body)
        resp.raise_for_status()
        return float(resp.json()["timings"]["predicted_per_second"])


async def read_streamed(client: httpx.AsyncClient, url: str, body: dict[str, object]) -> float:
    """The request streamed, read a second apart once the buffered bytes are taken; the speed
    from the stream's last event that has ``timings``."""
    tail = b""
    async with client.stream("POST", url, json={**body, "stream": True}) as resp:
        resp.raise_for_status()
        waited_from = time.monotonic()
        async for data in resp.aiter_raw():
            tail = (tail + data)[-16384:]
            if time.monotonic() - waited_from > 0.003:  # had to wait: the buffer is drained
                await asyncio.sleep(1.0)
            waited_from = time.monotonic()
    for line in reversed(tail.decode("utf-8", errors="replace").splitlines()):
        if line.startswith("data: {") and '"timings"' in line:
            return float(json.loads(line[6:])["timings"]["predicted_per_second"])
    raise RuntimeError(f"no timings in the stream's end: {tail[-300:]!r}")
