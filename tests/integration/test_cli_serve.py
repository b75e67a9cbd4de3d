"""`coder-tui serve` and `coder-tui demo --prepare-only` as a user runs them, with the real server."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
import tomli_w

from coder_tui.core.config.loader import Config
from coder_tui.core.demo.build import DemoResult
from coder_tui.core.server.ports import free_port


def _config_on_free_port(demo: DemoResult, tmp_path: Path) -> tuple[Path, int]:
    import tomllib

    data = tomllib.loads(demo.config_path.read_text())
    port = free_port()
    data["server"]["port"] = port
    path = tmp_path / "config.toml"
    path.write_text(tomli_w.dumps(data))
    return path, port


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_runs_until_signalled_and_leaves_nothing(
    demo: DemoResult, tmp_path: Path, sig: signal.Signals
) -> None:
    config, port = _config_on_free_port(demo, tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "coder_tui", "serve", "iq2_xxs", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    out: list[str] = []
    deadline = time.monotonic() + 60
    server_pid = None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        out.append(line)
        if m := re.search(r"ready at (\S+) \(pid (\d+)\) after ([\d.]+) s", line):
            server_pid = int(m.group(2))
            break
    assert server_pid, "".join(out)
    reply = httpx.post(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8},
        timeout=60,
        trust_env=False,
    )
    assert reply.status_code == 200
    proc.send_signal(sig)
    rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, "".join(out) + rest
    assert "exited: stopped" in rest
    assert not psutil.pid_exists(server_pid) or psutil.Process(server_pid).status() == "zombie"


def test_serve_refuses_a_taken_port(demo: DemoResult, tmp_path: Path) -> None:
    import socket

    config, port = _config_on_free_port(demo, tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        res = subprocess.run(
            [sys.executable, "-m", "coder_tui", "serve", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert res.returncode == 2
    assert f"port {port} on 127.0.0.1 is already taken by python" in res.stderr
    assert "Traceback" not in res.stderr


def test_demo_prepare_only_prints_a_working_config(demo: DemoResult, tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "coder_tui", "demo", "--prepare-only", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    path = Path(res.stdout.strip())
    assert path.is_file() and path.parent.parent == tmp_path
    check = subprocess.run(
        [sys.executable, "-m", "coder_tui", "profiles", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr
    assert "all 4 profiles fit" in check.stdout


async def test_tui_with_the_real_server(demo_config: Config) -> None:
    import asyncio

    from coder_tui.core.server.events import ServerState
    from coder_tui.ui.app import CoderApp
    from coder_tui.ui.widgets.server_bar import ServerBar

    def _bar(app: CoderApp) -> ServerBar:
        return app.screen.query_one(ServerBar)

    app = CoderApp(demo_config)
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(400):
            if _bar(app).serving.state is ServerState.READY:
                break
            await asyncio.sleep(0.05)
        assert _bar(app).serving.state is ServerState.READY
        assert app.manager is not None
        pid = app.manager.pid
        assert _bar(app).serving.label == "q4_k_m"
        await pilot.press("ctrl+q")
    assert pid is not None and not psutil.pid_exists(pid)
