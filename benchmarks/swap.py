"""Hot-swap overhead: what a swap costs beyond llama-server's own model load (target < 0.5 s).

Run: ``python benchmarks/swap.py [--size small|bench] [-n 10]``. It makes (or reuses) the demo
model in two quants, starts the first through ``Swapper``, then swaps back and forth ``n`` times
and prints a Markdown table of the median and p95 of each measure, which it also appends, under
a date header, to ``docs/performance.md`` (``--no-write`` leaves the file alone). The server is
always stopped at the end, whatever happens.

Definitions (each swap):
- total: ``Swapper.swap`` from call to ready (stop, VRAM release wait, start, ready).
- stop: SIGTERM to reaped (the ``stopping`` phase).
- start-to-ready: spawn preparation to the first ``/health`` 200 (``starting`` + ``loading``).
- server load: llama-server's own load time, the ``M.SS.mmm.uuu`` stamp on its ``model loaded``
  log line (time since its logger started, i.e. nearly since exec); when a server prints no such
  line, its arrival after spawn; when it prints none at all, spawn to ``/health`` 200.
- overhead: total minus server load: stopping the old server, the VRAM wait, probing and
  spawning, the readiness poll's latency and the Python side.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

from coder_tui.core.config.loader import load_config
from coder_tui.core.demo.build import prepare_demo
from coder_tui.core.metrics.gpu import GpuProbe
from coder_tui.core.paths import app_paths
from coder_tui.core.server.ports import free_port
from coder_tui.core.server.process import ServerManager
from coder_tui.core.server.swap import Swapper, SwapPhase, SwapResult

ROOT = Path(__file__).resolve().parent.parent
TARGET_OVERHEAD_S = 0.5


def _p95(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _row(name: str, values: Sequence[float]) -> str:
    if not values:
        return f"| {name} | - | - |"
    return f"| {name} | {statistics.median(values) * 1000:.0f} | {_p95(values) * 1000:.0f} |"


def table(results: Sequence[SwapResult]) -> list[str]:
    def phase(r: SwapResult, *names: SwapPhase) -> float:
        return sum(s for p, s in r.phases if p in names)

    rows = {
        "total swap": [r.total_s for r in results],
        "stop (SIGTERM to reaped)": [phase(r, SwapPhase.STOPPING) for r in results],
        "VRAM release wait": [phase(r, SwapPhase.RELEASING_VRAM) for r in results],
        "start to ready": [phase(r, SwapPhase.STARTING, SwapPhase.LOADING) for r in results],
        "server's own load": [
            r.server_load_s if r.server_load_s is not None else r.load_time_s or 0.0
            for r in results
        ],
        "**overhead** (total − server load)": [
            r.overhead_s for r in results if r.overhead_s is not None
        ],
    }
    lines = ["| measure | median ms | p95 ms |", "|---|---:|---:|"]
    lines += [_row(name, values) for name, values in rows.items()]
    return lines


async def run(size: str, n: int, names: tuple[str, str], demo_dir: Path) -> list[SwapResult]:
    demo = await asyncio.to_thread(
        prepare_demo, demo_dir, size, ("Q8_0", "Q4_K_M"), port=free_port(), progress=print
    )
    config = load_config(demo.config_path)
    server = dataclasses.replace(config.server, port=free_port())
    mgr = ServerManager(server, log_dir=demo_dir / "swap-bench-logs")
    gpu = GpuProbe()
    swapper = Swapper(mgr, gpu=gpu)
    profiles = [config.profile(name) for name in names]
    results: list[SwapResult] = []
    try:
        first = await swapper.swap(profiles[0])
        if not first.ok:
            raise SystemExit(f"could not start {names[0]}: {first.error}")
        for i in range(n):
            result = await swapper.swap(profiles[(i + 1) % 2])
            if not result.ok:
                raise SystemExit(f"swap {i + 1} failed: {result.error}")
            results.append(result)
            print(
                f"swap {i + 1:>3}: {result.previous} -> {result.profile}  "
                f"total {result.total_s * 1000:.0f} ms, overhead {(result.overhead_s or 0) * 1000:.0f} ms"
            )
    finally:
        await mgr.stop()
        gpu.close()
    print(f"llama-server: {mgr.version or 'unknown version'}")
    return results


def report(results: Sequence[SwapResult], size: str, names: tuple[str, str], vram: str) -> str:
    overheads = [r.overhead_s for r in results if r.overhead_s is not None]
    verdict = (
        "meets" if overheads and statistics.median(overheads) < TARGET_OVERHEAD_S else "MISSES"
    )
    stamp = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    head = [
        f"## Hot-swap overhead — {stamp}",
        "",
        f"`benchmarks/swap.py --size {size} -n {len(results)}`: {len(results)} swaps between the "
        f"demo model's `{names[0]}` and `{names[1]}` profiles on {platform.node() or 'this host'} "
        f"({os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}); "
        f"VRAM wait: {vram}. Median overhead {verdict} the {TARGET_OVERHEAD_S * 1000:.0f} ms "
        "target. Overhead = total swap − llama-server's own load time (the stamp on its "
        "`model loaded` log line); see the definitions in `benchmarks/swap.py`.",
        "",
    ]
    return "\n".join([*head, *table(results), ""])


def append(doc: Path, text: str) -> None:
    """Append ``text`` to ``doc`` (made, with a title, if missing); never rewrites what is there."""
    doc.parent.mkdir(parents=True, exist_ok=True)
    fresh = not doc.exists() or doc.stat().st_size == 0
    with doc.open("a", encoding="utf-8") as fh:
        if fresh:
            fh.write("# Performance\n\nMeasurements appended by the scripts in `benchmarks/`.\n")
        fh.write("\n" + text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("small", "bench"), default="small")
    parser.add_argument("-n", type=int, default=10, help="number of swaps (default 10)")
    parser.add_argument("--profiles", default="q8_0,q4_k_m", help="two demo profiles, A,B")
    parser.add_argument("--demo-dir", type=Path, default=app_paths().demo_dir)
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "performance.md")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    a, _, b = args.profiles.partition(",")
    names = (a.strip(), b.strip())
    results = asyncio.run(run(args.size, max(1, args.n), names, args.demo_dir))
    vram = results[0].vram
    vram_text = (
        "none" if vram is None else f"{vram.status}" + (f" ({vram.reason})" if vram.reason else "")
    )
    text = report(results, args.size, names, vram_text)
    print()
    print(text)
    if not args.no_write:
        append(args.doc, text)
        print(f"appended to {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
