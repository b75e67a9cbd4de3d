"""The dashboard of two revisions side by side: what each costs the model and the server.

Checks out ``--before`` (a git revision, default ``HEAD~1``) into a temporary worktree and runs its
coder-tui, and this checkout's, in a pseudo-terminal on the dashboard (F4), attached to the bench
demo model's llama-server (threads on every core), while a fixed-length generation runs;
interleaved with the same generation and nothing watching, the order rotating round by round.
Each coder-tui is started once and stopped between its turns, as ``observer.py``'s watchers
(``Seats``): it keeps what it learnt of the requests before, as a dashboard left open does.
Reports medians: decode tokens/s, the app's CPU (share of one core) and wake-ups a second, and
what the server did per 1,000 tokens: waits (its threads sleeping and waking, which a request to
it causes) and preemptions. The table is appended to ``docs/performance.md`` (``--no-append`` to
skip).

    python benchmarks/dashboard_ab.py [--before HEAD~1 | --before-src DIR] [--rounds 5] [--tokens 2048]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import observer
from observer import (
    AppHome,
    CpuWindow,
    Seats,
    bench_config,
    generate,
    start_server,
    watched_request,
)
from report import publish

ROOT = Path(__file__).resolve().parent.parent
Row = tuple[float, float, float, float, float]
"""tokens/s, app CPU %, app wake-ups a second, server waits and preemptions per 1k tokens."""


def source_env(src: Path | None) -> dict[str, str]:
    """The environment that runs the coder-tui in ``src`` (None: this checkout's)."""
    if src is None:
        return {}
    # first on the path, before this checkout's (and the wheels' folder)
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(src), os.environ.get("PYTHONPATH")) if p)}


async def watched(seats: Seats, tokens: int) -> Row:
    """One generation under the dashboard of ``seats`` (resumed for it, stopped after)."""
    speed, window = await watched_request(seats, "dashboard", tokens)
    return _row(speed, window, tokens)


async def unwatched(url: str, tokens: int) -> Row:
    window = CpuWindow()
    window.start()
    speed = await generate(url, tokens)
    window.stop()
    row = _row(speed, window, tokens)
    return (row[0], 0.0, 0.0, row[3], row[4])  # this process's request is not a watcher


def _row(speed: float, window: CpuWindow, tokens: int) -> Row:
    _, waits, preempted = window.server or (0.0, 0, 0)
    per_k = 1000 / tokens
    return (
        speed,
        100 * (window.share or 0.0),
        window.wakes_per_s or 0.0,
        waits * per_k,
        preempted * per_k,
    )


async def run(before: Path, rounds: int, tokens: int, tmp: Path) -> dict[str, list[Row]]:
    config, config_text = bench_config(tmp)
    mgr = await start_server(config, tmp)
    seats: dict[str, Seats] = {}
    try:
        url = mgr.url
        for name, src in (("before", before), ("after", None)):
            home = AppHome(tmp / f"home-{name}", config_text, tokens)
            seats[name] = Seats(url, home, resident=True, env=source_env(src))
            await seats[name].open(["dashboard"])
        arms = {
            "nothing watching": lambda: unwatched(url, tokens),
            "dashboard, before": lambda: watched(seats["before"], tokens),
            "dashboard, after": lambda: watched(seats["after"], tokens),
        }
        names = list(arms)
        results: dict[str, list[Row]] = {name: [] for name in names}
        for r in range(rounds):
            for name in names[r % 3 :] + names[: r % 3]:
                await asyncio.sleep(observer.SETTLE_S)
                row = await arms[name]()
                results[name].append(row)
                print(
                    f"round {r + 1}: {name}: " + ", ".join(f"{x:.2f}" for x in row), file=sys.stderr
                )
        return results
    finally:
        for each in seats.values():
            await each.close()
        await mgr.stop()


def table(results: dict[str, list[Row]], title: str) -> str:
    lines = [
        title,
        "",
        "| arm | tokens/s | app CPU, % of a core | app wake-ups a second | "
        "server waits per 1k tokens | server preemptions per 1k tokens |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, rows in results.items():
        med = [statistics.median(row[i] for row in rows) for i in range(5)]
        app = "" if name.startswith("nothing") else f"{med[1]:.2f} | {med[2]:.1f}"
        lines.append(f"| {name} | {med[0]:.1f} | {app or ' | '} | {med[3]:.0f} | {med[4]:.0f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="HEAD~1", help="git revision to compare against")
    parser.add_argument(
        "--before-src",
        type=Path,
        help="the src/ folder of the coder-tui to compare against, instead of a git revision "
        "(where there is no .git, e.g. the GPU host: carry an exported src/)",
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument(
        "--no-append", action="store_true", help="don't append to docs/performance.md"
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dashboard-ab-"))
    if args.before_src is not None:
        rev = str(args.before_src)
        results = asyncio.run(run(args.before_src.resolve(), args.rounds, args.tokens, tmp))
    else:
        tree = tmp / "before"
        rev = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", args.before],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), rev],
            check=True,
        )
        try:
            results = asyncio.run(run(tree / "src", args.rounds, args.tokens, tmp))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)])
    title = (
        f"### dashboard_ab ({time.strftime('%Y-%m-%d %H:%M')}, before = {rev}, after = this "
        f"checkout, {args.rounds} rounds, {args.tokens} tokens, every core)"
    )
    text = table(results, title)
    publish(text, append=not args.no_append)
    return 0


if __name__ == "__main__":
    sys.exit(main())
