"""Sampler cost guard: CPU of coder-tui's metric samplers at their default rates (issue 4).

Usage: ``python benchmarks/sampler_cost.py [--seconds N] [--json PATH] [--md PATH]``

Starts its own llama-server on the small demo model (``--model`` to use another GGUF), then
measures two windows, the server idle and the server generating. In each window every sampler runs
in its own child process, all side by side over the same wall time, and each child reports the CPU
time of its whole process (all threads, ``resource.getrusage``) over ``N`` seconds after a warm-up:

* ``baseline``  an asyncio loop ticking once a second with nothing to do (subtracted from the rest)
* ``host``      ``HostProbe.sample`` once a second on a worker thread, watching the server's pid
* ``server``    ``ServerProbe.sample`` once a second (``/slots``, and ``/metrics`` unless every slot is
                idle and ``/slots`` unchanged, over one kept-alive socket; the note counts skips)
* ``nvml``      ``GpuProbe.sample`` once a second on a worker thread ("no NVIDIA GPU" without one)
* ``pcie``      ``PcieSampler``'s thread at its default rate, taken once a second
* ``all``       ``MetricsSampler.run()`` with default ``SamplerConfig``, watching the server and its
                profile (so the MoE traffic model runs too)

Prints one Markdown table (share of one core, baseline subtracted; target under 1 % for ``all``);
``--json`` and ``--md`` also write the raw reports and the table to files (the GPU-host scripts
collect them). The server is always stopped before the script exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from harness import table as harness_table

MODES = ("baseline", "host", "server", "nvml", "pcie", "all")
WARMUP_S = 2.5
TARGET_PCT = 1.0


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


# -- child: one sampler ---------------------------------------------------------------------------
def _profile(model: str, **fields: Any) -> Any:
    from coder_tui.core.config.loader import Profile

    return Profile(name="bench", model=Path(model), n_gpu_layers=99, **fields)


async def _child(mode: str, url: str, pid: int, model: str, seconds: float) -> dict[str, Any]:
    from coder_tui.core.metrics.bus import MetricsSampler, SamplerConfig
    from coder_tui.core.metrics.gpu import GpuProbe, PcieSampler
    from coder_tui.core.metrics.host import HostProbe
    from coder_tui.core.metrics.server import ServerProbe

    cfg = SamplerConfig()
    note = ""
    closers: list[Callable[[], Any]] = []
    notes: list[Callable[[], str]] = []
    tick: Callable[[], Awaitable[Any]]
    if mode == "baseline":

        async def tick() -> None:
            return None

    elif mode == "host":
        host = HostProbe()
        host.watch(pid)

        async def tick() -> Any:
            return await asyncio.to_thread(host.sample)

    elif mode == "server":
        probe = ServerProbe(url, min_interval_s=cfg.server_interval_s)
        closers.append(probe.aclose)

        async def tick() -> Any:
            return await probe.sample()

        def server_note() -> str:
            return f"/metrics skipped {probe.metrics_skipped}x"

        notes.append(server_note)

    elif mode == "nvml":
        gpu = GpuProbe()
        gpu.open()
        note = gpu.reason or f"{gpu.device_count} GPU(s)"
        closers.append(gpu.close)

        async def tick() -> Any:
            return await asyncio.to_thread(gpu.sample, {pid})

    elif mode == "pcie":
        gpu = GpuProbe()
        gpu.open()
        pcie = PcieSampler(gpu, cfg.pcie_rate_hz)
        pcie.start()
        note = gpu.reason or f"{cfg.pcie_rate_hz:g} Hz"
        closers += [pcie.stop, gpu.close]

        async def tick() -> Any:
            return pcie.take()

    elif mode == "all":
        sampler = MetricsSampler(url, config=cfg)
        sampler.watch(pid=pid, profile=_profile(model))
        return await _measure_run(sampler, seconds)
    else:
        raise SystemExit(f"unknown mode {mode}")

    ticks = 0
    t_end_warm = time.monotonic() + WARMUP_S
    next_t = time.monotonic()
    start_cpu = start_wall = None
    while True:
        await tick()
        now = time.monotonic()
        if start_wall is None and now >= t_end_warm:
            start_cpu, start_wall = _cpu_s(), now
        elif start_wall is not None:
            ticks += 1
            if now - start_wall >= seconds:
                break
        next_t += cfg.interval_s
        await asyncio.sleep(max(0.0, next_t - time.monotonic()))
    cpu, wall = _cpu_s() - (start_cpu or 0.0), time.monotonic() - start_wall
    note = "; ".join([note, *(n() for n in notes)]).strip("; ")
    for close in closers:
        result = close()
        if asyncio.iscoroutine(result):
            await result
    return {"mode": mode, "cpu_s": cpu, "wall_s": wall, "ticks": ticks, "note": note}


async def _measure_run(sampler: Any, seconds: float) -> dict[str, Any]:
    """``MetricsSampler.run()`` as the app drives it; CPU measured between two of its ticks."""
    ticks = 0
    t_end_warm = time.monotonic() + WARMUP_S
    start_cpu = start_wall = None
    note = ""
    async with contextlib.aclosing(sampler.run()) as it:
        async for snap in it:
            now = time.monotonic()
            if start_wall is None and now >= t_end_warm:
                start_cpu, start_wall = _cpu_s(), now
            elif start_wall is not None:
                ticks += 1
                note = snap.gpu.reason or f"{len(snap.gpu.devices)} GPU(s)"
                if snap.moe_error:
                    note += f"; moe: {snap.moe_error}"
                if now - start_wall >= seconds:
                    break
    assert start_wall is not None and start_cpu is not None
    return {
        "mode": "all",
        "cpu_s": _cpu_s() - start_cpu,
        "wall_s": time.monotonic() - start_wall,
        "ticks": ticks,
        "note": note,
    }


# -- parent: server, load, children ----------------------------------------------------------------
def _spawn_children(url: str, pid: int, model: str, seconds: float) -> dict[str, dict[str, Any]]:
    """Every mode in its own process, side by side; their JSON reports by mode."""
    procs = {
        mode: subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--child",
                mode,
                "--url",
                url,
                "--pid",
                str(pid),
                "--model",
                model,
                "--seconds",
                str(seconds),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for mode in MODES
    }
    out: dict[str, dict[str, Any]] = {}
    for mode, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=seconds + 120)
        try:
            out[mode] = json.loads(stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            out[mode] = {"mode": mode, "error": (stderr or stdout).strip()[-400:]}
    return out


def _load_loop(url: str, stop: threading.Event, counts: list[int]) -> None:
    """Keep the server generating (streamed chat requests, as the app makes) until ``stop``."""
    import httpx

    body = {
        "messages": [{"role": "user", "content": "write a function"}],
        "max_tokens": 512,
        "ignore_eos": True,
        "stream": True,
    }
    with httpx.Client(base_url=url, timeout=120, trust_env=False) as client:
        while not stop.is_set():
            try:
                with client.stream("POST", "/v1/chat/completions", json=body) as resp:
                    for _ in resp.iter_lines():
                        if stop.is_set():
                            break
            except httpx.TransportError:  # a kept-alive connection the server had closed
                continue
            counts[0] += 1


async def _parent(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from coder_tui.core.config.loader import ServerSettings
    from coder_tui.core.demo.build import prepare_demo
    from coder_tui.core.server.ports import free_port
    from coder_tui.core.server.process import ServerManager

    with tempfile.TemporaryDirectory(prefix="sampler-cost-") as tmp:
        if args.model:
            model = Path(args.model).resolve()
        else:  # the small demo model in F16: no llama-quantize needed
            model = prepare_demo(Path(tmp), "small", quants=(), port=8084).models["f16"]
        settings = ServerSettings(
            port=free_port(), ready_timeout_s=120, stop_grace_s=5, log_dir=Path(tmp) / "logs"
        )
        threads = max(1, (os.cpu_count() or 2) // 2)
        profile = _profile(str(model), ctx=4096, threads=threads)
        mgr = ServerManager(settings, log_dir=Path(tmp) / "logs")
        ready = await mgr.start(profile)
        windows: dict[str, Any] = {}
        try:
            print(
                f"server pid {ready.pid} on {model.name}; idle {args.seconds:g} s", file=sys.stderr
            )
            windows["idle"] = await asyncio.to_thread(
                _spawn_children, mgr.url, ready.pid, str(model), args.seconds
            )
            print(f"generating window {args.seconds:g} s", file=sys.stderr)
            stop, counts = threading.Event(), [0]
            load = threading.Thread(target=_load_loop, args=(mgr.url, stop, counts), daemon=True)
            load.start()
            try:
                await asyncio.sleep(1.0)
                windows["generating"] = await asyncio.to_thread(
                    _spawn_children, mgr.url, ready.pid, str(model), args.seconds
                )
            finally:
                stop.set()
                await asyncio.to_thread(load.join, 30)
            windows["requests_during_generating"] = counts[0]
        finally:
            await mgr.stop()
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "model": model.name,
        "seconds": args.seconds,
        "rates": _rates(),
    }
    return {"meta": meta, "windows": windows}, table(windows, meta)


def _rates() -> str:
    from coder_tui.core.metrics.bus import SamplerConfig

    c = SamplerConfig()
    return f"{1 / c.interval_s:g} Hz, server {1 / c.server_interval_s:g} Hz, PCIe {c.pcie_rate_hz:g} Hz"


def _share(windows: dict[str, Any], window: str, mode: str) -> float | None:
    rep, base = windows.get(window, {}).get(mode, {}), windows.get(window, {}).get("baseline", {})
    if "cpu_s" not in rep or "cpu_s" not in base:
        return None
    own = rep["cpu_s"] / rep["wall_s"]
    if mode == "baseline":
        return 100.0 * own
    return 100.0 * (own - base["cpu_s"] / base["wall_s"])


def table(windows: dict[str, Any], meta: dict[str, Any]) -> str:
    rows = []
    for mode in MODES:
        cells = []
        for window in ("idle", "generating"):
            share = _share(windows, window, mode)
            rep = windows.get(window, {}).get(mode, {})
            cells.append(
                "error" if "error" in rep else f"{share:.3f} %" if share is not None else "–"
            )
        note = windows.get("generating", {}).get(mode, {}).get("note", "")
        if mode == "server":  # the /metrics skips happen while idle: show both windows' counts
            idle_note = windows.get("idle", {}).get(mode, {}).get("note", "")
            note = f"idle: {idle_note}; generating: {note}"
        if mode == "baseline":
            note = "idle asyncio loop itself (not subtracted)"
        err = windows.get("generating", {}).get(mode, {}).get("error")
        if err:
            note = err.splitlines()[-1][:120]
        target = holds = ""
        if mode == "all":
            shares = [_share(windows, w, mode) for w in ("idle", "generating")]
            target = f"< {TARGET_PCT:g} %"
            ok = all(x is not None and x < TARGET_PCT for x in shares)
            holds = "yes" if ok else "no"
        rows.append([mode, *cells, target, holds, note])
    title = (
        f"Sampler cost: {meta['model']}, {meta['seconds']:g} s per window, default rates "
        f"({meta.get('rates', '1 Hz')}); share of one core, baseline subtracted"
    )
    header = ["sampler", "server idle", "server generating", "target", "holds", "note"]
    return harness_table.render(title, header, rows)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="CPU cost of coder-tui's metric samplers.")
    ap.add_argument("--seconds", type=float, default=20.0, help="measured window (default 20)")
    ap.add_argument("--model", help="GGUF to serve (default: the small demo model, F16)")
    ap.add_argument("--json", help="also write the raw reports here")
    ap.add_argument("--md", help="also write the table here")
    ap.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--pid", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        report = asyncio.run(_child(args.child, args.url, args.pid, args.model, args.seconds))
        print(json.dumps(report))
        return 0
    data, text = asyncio.run(_parent(args))
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=1, default=str))
    if args.md:
        Path(args.md).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
