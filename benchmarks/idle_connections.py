"""What an idle HTTP connection costs llama-server: its threads' wake-ups a second.

llama-server (its cpp-httplib 0.59, ``detail::keep_alive``) checks an idle kept-alive connection
every 10 ms for up to 5 s. This serves the small demo model, asks nothing of it, and counts the
context switches of all its threads (``/proc``) over windows of ``--seconds``, in turn:
  nothing        no connection open;
  one idle       one connection left open after one ``GET /health``;
  kept alive     ``/slots`` and ``/metrics`` every second over one kept-alive connection (the
                 metrics probe before it closed its connection after each poll);
  coder-tui      coder-tui's ``ServerProbe`` every second as it is now (a connection per poll,
                 closed after it);
  chat client    coder-tui's ``ChatClient``: a 4-token reply asked whole, then idle, both in the
                 window (its pool keeps nothing open).
The client's own CPU for the two probe rows is given too: opening a loopback connection per poll
is what the probe pays instead.

    python benchmarks/idle_connections.py [--seconds 4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import proc_counters

from coder_tui.core.chat.client import ChatClient
from coder_tui.core.config.loader import load_config
from coder_tui.core.demo.build import prepare_demo
from coder_tui.core.metrics.poll_connection import PollConnection
from coder_tui.core.metrics.server import ServerProbe
from coder_tui.core.server.ports import free_port
from coder_tui.core.server.process import ServerManager

Window = Callable[[str, int, int, float], Awaitable[float]]
"""(url, port, server pid, seconds) -> the client's CPU seconds during the window."""


async def _sleep_window(seconds: float) -> float:
    c0 = time.process_time()
    await asyncio.sleep(seconds)
    return time.process_time() - c0


async def nothing(url: str, port: int, pid: int, seconds: float) -> float:
    return await _sleep_window(seconds)


async def one_idle(url: str, port: int, pid: int, seconds: float) -> float:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        sock.recv(65536)
        return await _sleep_window(seconds)


async def _polling(seconds: float, poll: Callable[[], object]) -> float:
    c0, end = time.process_time(), time.monotonic() + seconds
    while time.monotonic() < end:
        await asyncio.to_thread(poll)
        await asyncio.sleep(max(0.0, min(1.0, end - time.monotonic())))
    return time.process_time() - c0


async def kept_alive(url: str, port: int, pid: int, seconds: float) -> float:
    conn = PollConnection("127.0.0.1", port)

    def poll() -> None:
        conn.get("/slots")
        conn.get("/metrics")  # and never released: the connection stays open between polls

    try:
        return await _polling(seconds, poll)
    finally:
        conn.close()


async def coder_tui_probe(url: str, port: int, pid: int, seconds: float) -> float:
    probe = ServerProbe(url, min_interval_s=0)
    try:
        return await _polling(seconds, probe.sample_blocking)
    finally:
        await probe.aclose()


async def chat_client(url: str, port: int, pid: int, seconds: float) -> float:
    async with ChatClient(url) as client:
        async for _ in client.quiet_chat([{"role": "user", "content": "Hi"}], max_tokens=4):
            pass
        return await _sleep_window(seconds)


ROWS: dict[str, Window] = {
    "nothing connected": nothing,
    "one idle kept-alive connection": one_idle,
    "/slots + /metrics every 1 s, connection kept alive (before)": kept_alive,
    "coder-tui's ServerProbe every 1 s (connection per poll)": coder_tui_probe,
    "a 4-token reply from coder-tui's ChatClient, then idle": chat_client,
}


async def run(seconds: float, rounds: int, tmp: Path) -> dict[str, list[tuple[float, float]]]:
    demo = prepare_demo(tmp / "demo", "small", ("Q4_K_M",), port=free_port())
    config = load_config(demo.config_path)
    port = free_port()
    mgr = ServerManager(replace(config.server, port=port), log_dir=tmp / "logs")
    await mgr.start(next(iter(config.profiles.values())))
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in ROWS}
    try:
        assert mgr.pid is not None
        for r in range(rounds):
            for name, window in ROWS.items():
                await asyncio.sleep(6.0)  # whatever the row before left open has timed out
                w0, t0 = proc_counters.wakes(mgr.pid), time.monotonic()
                cpu = await window(mgr.url, port, mgr.pid, seconds)
                dt = time.monotonic() - t0
                wakes = (proc_counters.wakes(mgr.pid) - w0) / dt
                results[name].append((wakes, 100 * cpu / dt))
                print(f"round {r + 1}: {name}: {wakes:.1f} wakes/s", file=sys.stderr)
    finally:
        await mgr.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="idle-conn-") as tmp:
        results = asyncio.run(run(args.seconds, args.rounds, Path(tmp)))
    print(
        f"### idle connections ({time.strftime('%Y-%m-%d %H:%M')}, small demo model idle, "
        f"{args.seconds:g} s windows, {args.rounds} rounds, medians)\n"
    )
    print("| client | llama-server's wake-ups a second | client CPU, % of a core |")
    print("| --- | --- | --- |")
    for name, rows in results.items():
        wakes = statistics.median(w for w, _ in rows)
        cpu = statistics.median(c for _, c in rows)
        print(f"| {name} | {wakes:.1f} | {cpu:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
