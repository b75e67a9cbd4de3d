"""What coder-tui in a real terminal wakes for: Textual's stock Linux driver against coder-tui's.

coder-tui runs in a pseudo-terminal (160x50, Textual's real driver, its screen output read and
dropped), attached to the bench demo model's llama-server, as ``observer.py``'s arms (b) and (c)
run it. Per driver, interleaved round by round: the chat screen idle, the dashboard (F4) idle, and
the dashboard while the server generates. Each window reports the process's wake-ups a second
(context switches of all its threads, from ``/proc``) and its CPU as a share of one core, medians
over rounds. The stock driver is Textual's own ``LinuxDriver`` (chosen with ``TEXTUAL_DRIVER``);
its input thread waits on the terminal 0.1 s at a time. coder-tui's (``ui/driver.py``) waits until
a key comes.

The table is appended to ``docs/performance.md`` (``--no-append`` to skip).

    python benchmarks/terminal_wakes.py [--rounds 3] [--seconds 8] [--tokens 1024] [--no-append]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import proc_counters
from observer import F4, AppHome, app_quit, app_up, bench_config, generate, start_server
from report import publish

DRIVERS = {
    "Textual's LinuxDriver": "textual.drivers.linux_driver:LinuxDriver",
    "coder-tui's quiet driver": "",
}
"""Arm -> ``TEXTUAL_DRIVER`` (empty: Textual picks, coder-tui swaps in its own)."""

Window = tuple[float, float]
"""(wake-ups a second, CPU share of one core in %)."""


class Meter:
    """Wake-ups and CPU of process ``pid`` between ``start`` and ``stop``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def start(self) -> None:
        self._t = time.monotonic()
        self._c = proc_counters.totals(self.pid)

    def stop(self) -> Window:
        dt = time.monotonic() - self._t
        cpu, voluntary, involuntary = proc_counters.totals(self.pid)
        wakes = voluntary - self._c[1] + involuntary - self._c[2]
        return wakes / dt, 100 * (cpu - self._c[0]) / dt


async def one_arm(
    url: str, home: AppHome, driver: str, seconds: float, tokens: int
) -> list[Window]:
    app = home.start(url, {"TEXTUAL_DRIVER": driver} if driver else None)
    try:
        await app_up(app)
        meter = Meter(app.proc.pid)
        out = []
        meter.start()
        await asyncio.sleep(seconds)
        out.append(meter.stop())  # the chat screen, idle
        app.press(F4)
        await asyncio.sleep(2.0)
        meter.start()
        await asyncio.sleep(seconds)
        out.append(meter.stop())  # the dashboard, idle
        meter.start()
        await generate(url, tokens)
        out.append(meter.stop())  # the dashboard while the server generates
        return out
    finally:
        await app_quit(app)


STATES = ("chat screen, idle", "dashboard (F4), idle", "dashboard (F4), generating")


async def run(rounds: int, seconds: float, tokens: int, tmp: Path) -> dict[str, list[list[Window]]]:
    config, config_text = bench_config(tmp)
    mgr = await start_server(config, tmp)
    try:
        home = AppHome(tmp / "home", config_text, tokens)
        results: dict[str, list[list[Window]]] = {name: [] for name in DRIVERS}
        names = list(DRIVERS)
        for r in range(rounds):
            for name in names[r % 2 :] + names[: r % 2]:
                windows = await one_arm(mgr.url, home, DRIVERS[name], seconds, tokens)
                results[name].append(windows)
                text = ", ".join(
                    f"{s}: {w:.1f} wakes/s, {c:.2f} %"
                    for s, (w, c) in zip(STATES, windows, strict=True)
                )
                print(f"round {r + 1}: {name}: {text}", file=sys.stderr)
        return results
    finally:
        await mgr.stop()


def table(results: dict[str, list[list[Window]]], title: str) -> str:
    lines = [
        title,
        "",
        "| driver | screen | wake-ups a second | CPU, % of a core |",
        "| --- | --- | --- | --- |",
    ]
    for name, rounds in results.items():
        for i, state in enumerate(STATES):
            wakes = statistics.median(r[i][0] for r in rounds)
            cpu = statistics.median(r[i][1] for r in rounds)
            lines.append(f"| {name} | {state} | {wakes:.1f} | {cpu:.2f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument(
        "--no-append", action="store_true", help="don't append to docs/performance.md"
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="terminal-wakes-"))
    results = asyncio.run(run(args.rounds, args.seconds, args.tokens, tmp))
    title = (
        f"### terminal_wakes ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
        f"{args.rounds} rounds, {args.seconds:g} s windows, {args.tokens} tokens generating)"
    )
    text = table(results, title)
    publish(text, append=not args.no_append)
    return 0


if __name__ == "__main__":
    sys.exit(main())
