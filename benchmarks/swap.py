"""Swap guard: what a hot swap costs beyond llama-server's own model load (target < 0.5 s).

Run: ``python benchmarks/swap.py [--size small|bench] [-n 10]``. It makes (or reuses) the demo
model in two quants, starts the first through ``Swapper``, then swaps back and forth ``n`` times
and prints one Markdown table of the median and p95 of each measure. The server is always
stopped at the end, whatever happens.

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
import sys
from collections.abc import Sequence
from pathlib import Path

from harness import stats
from harness import table as harness_table

from coder_tui.core.config.loader import load_config
from coder_tui.core.demo.build import prepare_demo
from coder_tui.core.metrics.gpu import GpuProbe
from coder_tui.core.paths import app_paths
from coder_tui.core.server.ports import free_port
from coder_tui.core.server.process import ServerManager
from coder_tui.core.server.swap import Swapper, SwapPhase, SwapResult

TARGET_OVERHEAD_S = 0.5


def _log(text: str) -> None:
    """Progress, on stderr: stdout is the table alone."""
    print(text, file=sys.stderr)


def rows(results: Sequence[SwapResult]) -> list[list[str]]:
    def phase(r: SwapResult, *names: SwapPhase) -> float:
        return sum(s for p, s in r.phases if p in names)

    overheads = [r.overhead_s for r in results if r.overhead_s is not None]
    rows = {
        "total swap": [r.total_s for r in results],
        "stop (SIGTERM to reaped)": [phase(r, SwapPhase.STOPPING) for r in results],
        "VRAM release wait": [phase(r, SwapPhase.RELEASING_VRAM) for r in results],
        "start to ready": [phase(r, SwapPhase.STARTING, SwapPhase.LOADING) for r in results],
        "server's own load": [
            r.server_load_s if r.server_load_s is not None else r.load_time_s or 0.0
            for r in results
        ],
        "**overhead** (total − server load)": overheads,
    }
    out = []
    for name, values in rows.items():
        median = f"{stats.median(values) * 1000:.0f}" if values else "-"
        p95 = f"{stats.percentile(values, 95) * 1000:.0f}" if values else "-"
        target = holds = ""
        if values is overheads:
            target = f"median < {TARGET_OVERHEAD_S * 1000:.0f}"
            holds = "yes" if stats.median(values) < TARGET_OVERHEAD_S else "no"
        out.append([name, median, p95, target, holds])
    return out


async def run(size: str, n: int, names: tuple[str, str], demo_dir: Path) -> list[SwapResult]:
    demo = await asyncio.to_thread(
        prepare_demo, demo_dir, size, ("Q8_0", "Q4_K_M"), port=free_port(), progress=_log
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
            _log(
                f"swap {i + 1:>3}: {result.previous} -> {result.profile}  "
                f"total {result.total_s * 1000:.0f} ms, overhead {(result.overhead_s or 0) * 1000:.0f} ms"
            )
    finally:
        await mgr.stop()
        gpu.close()
    _log(f"llama-server: {mgr.version or 'unknown version'}")
    return results


def report(results: Sequence[SwapResult], size: str, names: tuple[str, str], vram: str) -> str:
    title = (
        f"Swap: {len(results)} swaps between the {size} demo model's `{names[0]}` and "
        f"`{names[1]}` profiles; VRAM wait: {vram}"
    )
    notes = [
        "Overhead = total swap − llama-server's own load time (the stamp on its `model loaded` "
        "log line); see the definitions in `benchmarks/swap.py`."
    ]
    header = ["measure", "median ms", "p95 ms", "target", "holds"]
    return harness_table.render(title, header, rows(results), notes)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("small", "bench"), default="small")
    parser.add_argument("-n", type=int, default=10, help="number of swaps (default 10)")
    parser.add_argument("--profiles", default="q8_0,q4_k_m", help="two demo profiles, A,B")
    parser.add_argument("--demo-dir", type=Path, default=app_paths().demo_dir)
    args = parser.parse_args(argv)
    a, _, b = args.profiles.partition(",")
    names = (a.strip(), b.strip())
    results = asyncio.run(run(args.size, max(1, args.n), names, args.demo_dir))
    vram = results[0].vram
    vram_text = (
        "none" if vram is None else f"{vram.status}" + (f" ({vram.reason})" if vram.reason else "")
    )
    text = report(results, args.size, names, vram_text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
