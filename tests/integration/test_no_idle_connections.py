"""coder-tui leaves llama-server no idle connection: after a reply, a probe or a start, none is open.

llama-server checks an idle kept-alive connection every 10 ms for up to 5 s (cpp-httplib
``keep_alive``): a thread of the server wakes 100 times a second for each one, which costs a model
that has every core (``core/server/connections.py``). Checked on the real server: its open TCP
connections, and how often its threads wake while nobody asks anything.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import psutil

from coder_tui.core.chat.client import ChatClient, StreamEnd
from coder_tui.core.config.loader import Config
from coder_tui.core.metrics.server import ServerProbe
from coder_tui.core.server.process import ServerManager

MSGS = [{"role": "user", "content": "Say hi."}]


def open_connections(pid: int, port: int) -> list[object]:
    """The server's established connections on its listening ``port``."""
    return [
        c
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port
    ]


async def no_open_connections(pid: int, port: int, timeout_s: float = 2.0) -> list[object]:
    """Waits for the server to see our side closed; the connections still open after that."""
    end = time.monotonic() + timeout_s
    while (left := open_connections(pid, port)) and time.monotonic() < end:
        await asyncio.sleep(0.05)
    return left


def wakes_per_s(pid: int, seconds: float) -> float:
    """Context switches a second of all the server's threads over ``seconds``."""

    def count() -> int:
        total = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                text = Path(f"/proc/{pid}/task/{tid}/status").read_text()
            except OSError:
                continue
            total += sum(
                int(line.split()[1]) for line in text.splitlines() if "ctxt_switches:" in line
            )
        return total

    before = count()
    time.sleep(seconds)
    return (count() - before) / seconds


async def test_replies_probes_and_start_leave_no_idle_connection(
    demo_config: Config, tmp_path: Path
) -> None:
    mgr = ServerManager(demo_config.server, log_dir=tmp_path)
    try:
        await mgr.start(demo_config.profile("q4_k_m"))
        assert mgr.pid is not None
        pid, port = mgr.pid, demo_config.server.port
        assert await no_open_connections(pid, port) == []  # the readiness probe's is closed
        async with ChatClient(mgr.url) as client:
            streamed = [e async for e in client.stream_chat(MSGS, max_tokens=8, temperature=0)]
            assert isinstance(streamed[-1], StreamEnd) and streamed[-1].status == "done"
            assert await no_open_connections(pid, port) == []
            quiet = [e async for e in client.quiet_chat(MSGS, max_tokens=8, temperature=0)]
            assert isinstance(quiet[-1], StreamEnd) and quiet[-1].status == "done"
            assert await no_open_connections(pid, port) == []
            probe = ServerProbe(mgr.url, min_interval_s=0)
            for _ in range(2):
                assert (await probe.sample()).slots_available
            assert await no_open_connections(pid, port) == []
            # Nobody asking anything now: the server's threads barely wake. One idle kept-alive
            # connection alone would make one of them wake 100 times a second.
            assert await asyncio.to_thread(wakes_per_s, pid, 1.0) < 40
            await probe.aclose()
    finally:
        await mgr.stop()
