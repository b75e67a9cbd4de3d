"""CPU cost of the dashboard refreshing: the TUI with live metrics versus the same TUI without.

Runs coder-tui headless (Textual's test driver, a real screen size) on the small demo model's real
llama-server, idle, for a window of wall time in each of three arms, interleaved:
  (a) metrics off, main screen        (b) metrics on, main screen (tiles beside the chat)
  (c) metrics on, full dashboard (F4)
and reports each arm's CPU as a share of one core (process time / wall time) and the difference
to (a): what the samplers plus the tile updates cost. Target (issue 4): under 3 % of one core.

    python benchmarks/dashboard_cost.py [--seconds 20] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from coder_tui.core.config.loader import load_config
from coder_tui.core.demo.build import prepare_demo
from coder_tui.core.server.ports import free_port
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui.app import CoderApp
from coder_tui.ui.screens.dashboard import DashboardScreen


async def _arm(config_path: Path, metrics: bool, full: bool, seconds: float, tmp: Path) -> float:
    config = load_config(config_path)
    config = replace(config, server=replace(config.server, port=free_port()))
    with HistoryStore(tmp / f"h-{time.monotonic_ns()}.sqlite3") as store:
        app = CoderApp(config, store=store, sample_metrics=metrics)
        async with app.run_test(size=(160, 50)) as pilot:
            for _ in range(400):
                if app.main is not None and app.main.server_ready:
                    break
                await asyncio.sleep(0.05)
            if full:
                await pilot.press("f4")
                assert isinstance(app.screen, DashboardScreen)
            await asyncio.sleep(2.0)  # settle: first samples, first layout
            cpu0, wall0 = time.process_time(), time.monotonic()
            await asyncio.sleep(seconds)
            cpu = time.process_time() - cpu0
            wall = time.monotonic() - wall0
            await pilot.press("ctrl+q")
    return cpu / wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dash-cost-"))
    demo = prepare_demo(tmp / "demo", "small", port=free_port())
    arms = {
        "a: metrics off": (False, False),
        "b: tiles beside chat": (True, False),
        "c: full dashboard": (True, True),
    }
    results: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(args.rounds):
        for name, (metrics, full) in arms.items():
            share = asyncio.run(_arm(demo.config_path, metrics, full, args.seconds, tmp))
            results[name].append(share)
            print(f"{name}: {share * 100:.2f} % of one core", file=sys.stderr)
    base = statistics.median(results["a: metrics off"])
    lines = [
        f"### dashboard_cost ({time.strftime('%Y-%m-%d %H:%M')}, {args.rounds} rounds x "
        f"{args.seconds:g} s, small demo model idle, 160x50)",
        "",
        "| arm | CPU (share of one core, median) | minus (a) | target |",
        "| --- | --- | --- | --- |",
    ]
    for name, values in results.items():
        med = statistics.median(values)
        delta = "" if name.startswith("a") else f"{(med - base) * 100:+.2f} %"
        target = "" if name.startswith("a") else "< 3 %"
        lines.append(f"| {name} | {med * 100:.2f} % | {delta} | {target} |")
    table = "\n".join(lines)
    print(table)
    perf = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
    perf.parent.mkdir(exist_ok=True)
    with perf.open("a", encoding="utf-8") as fh:
        fh.write("\n" + table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
