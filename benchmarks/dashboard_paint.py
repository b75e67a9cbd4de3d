"""What one dashboard tick costs to show and paint, with every tile live (as on a GPU host).

On a machine without an NVIDIA GPU the dashboard's GPU, VRAM and PCIe tiles say "no NVIDIA GPU"
and never repaint, so a run here shows less painting than the GPU host does (where py-spy found
three quarters of the dashboard's CPU in Textual's paint). This drives the F4 dashboard's
``Dashboard`` at 160x50, headless, with synthetic snapshots in which every value moves (one GPU,
a generating server, 300 s of history), and hooks the frame output to encode each frame to
terminal bytes as a real terminal's driver would. Per tick it reports the median CPU time of
``show`` (the snapshot into the tiles) and of the paint that follows (composing and encoding the
frame), the tiles repainted and the bytes written. The table is appended to
``docs/performance.md`` (``--no-append`` to skip).

    python benchmarks/dashboard_paint.py [--ticks 60]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import time
from typing import Any

from report import publish
from textual.app import App, ComposeResult
from textual.screen import Screen

from coder_tui.core.metrics.series import History
from coder_tui.core.metrics.types import (
    GpuDeviceSample,
    GpuSnapshot,
    HostSnapshot,
    MetricsSnapshot,
    ProcessSample,
    ServerPhase,
    ServerSample,
)
from coder_tui.ui.widgets.dashboard import Dashboard
from coder_tui.ui.widgets.tile import MetricTile

GIB = 2**30


def snapshot(t: int, history: History) -> MetricsSnapshot:
    """Tick ``t`` of a generating server on one GPU: every value moves a little."""
    wave = math.sin(t / 3.0)
    gen = 300.0 + 20 * wave
    host = HostSnapshot(
        cpu_percent=99.0 + 0.5 * wave,
        cpu_percent_per_core=(99.0,) * 16,
        ram_total_bytes=128 * GIB,
        ram_used_bytes=int((40 + wave) * GIB),
        ram_available_bytes=int((88 - wave) * GIB),
        swap_total_bytes=0,
        swap_used_bytes=0,
        swap_in_bytes_per_s=0.0,
        swap_out_bytes_per_s=0.0,
        swapping=False,
        server=ProcessSample(
            pid=1, alive=True, cpu_percent=1550.0 + 10 * wave, rss_bytes=30 * GIB, threads=17
        ),
    )
    gpu = GpuSnapshot(
        available=True,
        devices=(
            GpuDeviceSample(
                index=0,
                name="NVIDIA H200",
                vram_total_bytes=141 * GIB,
                vram_used_bytes=int((20 + 0.01 * t) * GIB),
                server_vram_bytes=int((19 + 0.01 * t) * GIB),
                gpu_util_percent=30.0 + 5 * wave,
                mem_util_percent=10.0 + wave,
                power_w=120.0 + 3 * wave,
                power_limit_w=700.0,
                temperature_c=40.0 + wave,
                pcie_gen=5,
                pcie_width=16,
                pcie_link_bytes_per_s=63e9,
                pcie_rx_bytes_per_s=(1.0 + wave) * 1e6,
                pcie_tx_bytes_per_s=(0.5 + wave / 2) * 1e6,
            ),
        ),
    )
    server = ServerSample(
        phase=ServerPhase.GENERATING,
        generation_tokens_per_s=gen,
        prompt_tokens_per_s=0.0,
        kv_fill_ratio=min(1.0, 0.1 + 0.002 * t),
        kv_used_tokens=4000 + 600 * t,
    )
    values = {
        "generation_tokens_per_s": gen,
        "prompt_tokens_per_s": 0.0,
        "kv_fill_ratio": server.kv_fill_ratio,
        "cpu_percent": host.cpu_percent,
        "ram_used_bytes": float(host.ram_used_bytes),
        "server_cpu_percent": 1550.0 + 10 * wave,
        "server_rss_bytes": float(30 * GIB),
        "gpu0.vram_used_bytes": float(gpu.devices[0].vram_used_bytes or 0),
        "gpu0.gpu_util_percent": gpu.devices[0].gpu_util_percent,
        "gpu0.power_w": gpu.devices[0].power_w,
        "gpu0.temperature_c": gpu.devices[0].temperature_c,
        "gpu0.pcie_rx_bytes_per_s": gpu.devices[0].pcie_rx_bytes_per_s,
        "gpu0.pcie_tx_bytes_per_s": gpu.devices[0].pcie_tx_bytes_per_s,
    }
    for _ in range(2):  # a slow tick (no idle core) covers two intervals
        history.extend(values)
    return MetricsSnapshot(
        time_s=float(t), gpu=gpu, host=host, server=server, moe=None, history=history
    )


class Board(App[None]):
    def compose(self) -> ComposeResult:
        yield Dashboard(id="full-dashboard")


async def measure(ticks: int) -> dict[str, list[float]]:
    app = Board()
    out: dict[str, list[float]] = {"show_ms": [], "paint_ms": [], "tiles": [], "bytes": []}
    frame = {"bytes": 0}
    async with app.run_test(size=(160, 50)) as pilot:
        display = app._display

        def _display(screen: Screen[Any], renderable: Any) -> None:
            if renderable is not None:
                frame["bytes"] += len(renderable.render_segments(app.console))
            display(screen, renderable)

        app._display = _display  # type: ignore[method-assign]
        board = app.query_one(Dashboard)
        history = History(300, 1)
        for t in range(150):  # 300 s of history before the measured ticks
            snapshot(t, history)
        await pilot.pause()
        refreshed: list[MetricTile] = []
        for tile in app.query(MetricTile):
            original = tile.refresh

            def spy(*args: Any, _tile: MetricTile = tile, _orig: Any = original, **kw: Any) -> Any:
                refreshed.append(_tile)
                return _orig(*args, **kw)

            tile.refresh = spy  # type: ignore[method-assign]
        for t in range(150, 150 + ticks):
            snap = snapshot(t, history)
            refreshed.clear()
            frame["bytes"] = 0
            c0 = time.process_time()
            board.show(snap)
            c1 = time.process_time()
            await pilot.pause()
            await asyncio.sleep(0.05)  # the screen's update timer (1/60 s) fires and paints
            c2 = time.process_time()
            out["show_ms"].append(1000 * (c1 - c0))
            out["paint_ms"].append(1000 * (c2 - c1))
            out["tiles"].append(float(len(set(map(id, refreshed)))))
            out["bytes"].append(float(frame["bytes"]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=60)
    parser.add_argument(
        "--no-append", action="store_true", help="don't append to docs/performance.md"
    )
    args = parser.parse_args()
    out = asyncio.run(measure(args.ticks))
    med = {k: statistics.median(v) for k, v in out.items()}
    text = "\n".join(
        [
            f"### dashboard_paint ({time.strftime('%Y-%m-%d %H:%M')}, 160x50, one GPU, every tile "
            f"live, {args.ticks} ticks, medians)",
            "",
            "| show, ms CPU | paint and encode, ms CPU | tiles repainted | bytes a frame |",
            "| --- | --- | --- | --- |",
            f"| {med['show_ms']:.2f} | {med['paint_ms']:.2f} | {med['tiles']:.0f} | "
            f"{med['bytes']:.0f} |",
        ]
    )
    publish(text, append=not args.no_append)
    return 0


if __name__ == "__main__":
    sys.exit(main())
