"""GPU validation of coder-tui's live metrics (issue 4, acceptance 4), next to nvidia-smi.

For each (quant, ``--n-cpu-moe``) configuration of the demo model: start llama-server with
``ServerManager``; at idle, read VRAM from ``GpuProbe`` and ``nvidia-smi`` back to back; then run a
prompt phase (distinct long prompts, ``cache_prompt`` off, one token each, so every prompt runs in
ubatches of 512 and CPU-resident experts are copied over PCIe) and a decode phase (short prompt,
256 tokens with ``ignore_eos``), each for a fixed wall time, while ``MetricsSampler`` runs at its
default rates and a thread polls ``nvidia-smi --query-gpu`` / ``--query-compute-apps`` once a
second and ``nvidia-smi dmon -s t`` samples PCIe throughput. Writes ``validate.json`` (every
reading) and ``validate.md`` (the summary table) to ``--out``.

Without ``nvidia-smi`` (a machine with no GPU) the same flow runs with the nvidia-smi parts left
out, which is how the script is dry-run before spending device time. ``scripts/gpu_validate.sh``
builds llama.cpp and calls this; see ``docs/gpu-validation.md`` for the results.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from coder_tui.core.config.loader import Profile, ServerSettings
from coder_tui.core.demo.build import prepare_demo
from coder_tui.core.gguf.layout import read_layout
from coder_tui.core.metrics import moe
from coder_tui.core.metrics.bus import MetricsSampler, SamplerConfig
from coder_tui.core.metrics.gpu import GpuProbe
from coder_tui.core.metrics.types import MetricsSnapshot
from coder_tui.core.server.ports import free_port
from coder_tui.core.server.process import ServerManager

MIB = 1 << 20
UBATCH = 512  # llama-server's default -ub: prompts run in ubatches of this many tokens
SMI_GPU_FIELDS = "memory.used,memory.total,utilization.gpu,power.draw,temperature.gpu"
_WORDS_TEXT = (
    "def class return import self value list dict async await yield lambda none true false for "
    "while if else elif try except finally with open read write parse token buffer index server "
    "model layer expert router cache memory bandwidth tensor matrix vector kernel thread"
)


# -- nvidia-smi ------------------------------------------------------------------------------------
def _smi(args: Sequence[str], timeout_s: float = 10.0) -> list[list[str]] | None:
    """CSV rows of one nvidia-smi query, or ``None`` when it can't be run."""
    try:
        out = subprocess.run(
            ["nvidia-smi", *args], capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return [
        [c.strip() for c in line.split(",")] for line in out.stdout.splitlines() if line.strip()
    ]


def _num(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None  # "[N/A]", "[Not Supported]"


def smi_reading() -> dict[str, Any] | None:
    """GPU 0's query-gpu fields and every compute app (pid -> MiB), read now."""
    gpu = _smi(["--query-gpu=" + SMI_GPU_FIELDS, "--format=csv,noheader,nounits"])
    if not gpu:
        return None
    apps = _smi(["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]) or []
    row = gpu[0]
    keys = SMI_GPU_FIELDS.split(",")
    reading: dict[str, Any] = {"t": time.time()}
    reading.update({k: _num(v) for k, v in zip(keys, row, strict=False)})
    reading["apps"] = {int(a[0]): _num(a[1]) for a in apps if len(a) >= 2 and a[0].isdigit()}
    return reading


class SmiPoller:
    """A thread reading ``smi_reading`` once a second into ``readings``."""

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self.readings: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="smi-poller", daemon=True)

    def __enter__(self) -> SmiPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)

    def _loop(self) -> None:
        while not self._stop.is_set():
            r = smi_reading()
            if r is not None:
                self.readings.append(r)
            self._stop.wait(self.interval_s)


def start_dmon(seconds: int) -> subprocess.Popen[str] | None:
    """``nvidia-smi dmon -s t -c N``: PCIe rx/tx (MB/s) once a second, for this phase."""
    try:
        return subprocess.Popen(
            ["nvidia-smi", "dmon", "-s", "t", "-c", str(seconds), "-o", "T"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    except OSError:
        return None


def finish_dmon(proc: subprocess.Popen[str] | None) -> dict[str, Any] | None:
    if proc is None:
        return None
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    rows = []
    for line in out.splitlines():
        parts = line.split()
        if not parts or line.lstrip().startswith("#") or len(parts) < 4:
            continue
        rx, tx = _num(parts[-2]), _num(parts[-1])  # time, gpu, rxpci, txpci
        rows.append({"time": parts[0], "gpu": parts[1], "rx_mb_s": rx, "tx_mb_s": tx})
    return {"raw": out[-4000:], "rows": rows}


# -- workload ------------------------------------------------------------------------------------
def prompt_text(n_words: int, seed: int) -> str:
    rng = random.Random(seed)
    words = _WORDS_TEXT.split()
    return f"[{seed}] " + " ".join(rng.choice(words) for _ in range(n_words))


async def calibrate_words(client: httpx.AsyncClient, target_tokens: int) -> tuple[int, int]:
    """Words of ``prompt_text`` giving about ``target_tokens`` tokens (and the count measured)."""
    probe_words = 1000
    resp = await client.post("/tokenize", json={"content": prompt_text(probe_words, 0)})
    resp.raise_for_status()
    per_word = len(resp.json()["tokens"]) / probe_words
    words = max(16, int(target_tokens / per_word))
    resp = await client.post("/tokenize", json={"content": prompt_text(words, 1)})
    return words, len(resp.json()["tokens"])


async def prompt_phase(
    client: httpx.AsyncClient, seconds: float, words: int, seed0: int
) -> list[dict[str, Any]]:
    """Distinct long prompts back to back (one token generated each) for ``seconds``."""
    timings = []
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        body = {
            "prompt": prompt_text(words, seed0 + i),
            "n_predict": 1,
            "cache_prompt": False,
            "temperature": 0,
        }
        resp = await client.post("/completion", json=body)
        resp.raise_for_status()
        timings.append(resp.json().get("timings") or {})
        i += 1
    return timings


async def decode_phase(
    client: httpx.AsyncClient, seconds: float, n_predict: int
) -> list[dict[str, Any]]:
    """Short prompt, ``n_predict`` tokens with ``ignore_eos``, back to back for ``seconds``."""
    timings = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        body = {
            "prompt": "def parse(buffer):",
            "n_predict": n_predict,
            "ignore_eos": True,
            "cache_prompt": False,
        }
        resp = await client.post("/completion", json=body)
        resp.raise_for_status()
        timings.append(resp.json().get("timings") or {})
    return timings


# -- recording -----------------------------------------------------------------------------------
def snap_row(snap: MetricsSnapshot) -> dict[str, Any]:
    """The fields of one sampler snapshot that the validation compares."""
    row: dict[str, Any] = {"t": snap.time_s, "gpu_reason": snap.gpu.reason}
    if snap.gpu.devices:
        d = snap.gpu.devices[0]
        row.update(
            vram_used_bytes=d.vram_used_bytes,
            vram_total_bytes=d.vram_total_bytes,
            server_vram_bytes=d.server_vram_bytes,
            gpu_util_percent=d.gpu_util_percent,
            power_w=d.power_w,
            temperature_c=d.temperature_c,
            pcie_rx_bytes_per_s=d.pcie_rx_bytes_per_s,
            pcie_tx_bytes_per_s=d.pcie_tx_bytes_per_s,
            pcie_link_bytes_per_s=d.pcie_link_bytes_per_s,
            pcie_gen=d.pcie_gen,
            pcie_width=d.pcie_width,
            vram_bandwidth_bytes_per_s=d.vram_bandwidth_bytes_per_s,
        )
    s = snap.server
    if s is not None:
        row.update(
            phase=s.phase.value,
            generation_tokens_per_s=s.generation_tokens_per_s,
            generation_tokens_per_busy_s=s.generation_tokens_per_busy_s,
            prompt_tokens_per_s=s.prompt_tokens_per_s,
            prompt_tokens_per_busy_s=s.prompt_tokens_per_busy_s,
            kv_fill_ratio=s.kv_fill_ratio,
        )
    h = snap.host
    if h is not None:
        row.update(host_cpu_percent=h.cpu_percent, ram_used_bytes=h.ram_used_bytes)
        if h.server is not None:
            row.update(server_cpu_percent=h.server.cpu_percent, server_rss_bytes=h.server.rss_bytes)
    m = snap.moe
    if m is not None:
        row.update(
            bound=m.bound.value,
            ram_bytes_per_token=m.traffic.ram_bytes_per_token,
            vram_bytes_per_token=m.traffic.vram_bytes_per_token,
            prompt_pcie_bytes_per_ubatch=m.traffic.prompt_pcie_bytes_per_ubatch,
            ram_bandwidth_bytes_per_s=m.ram_bandwidth_bytes_per_s,
            vram_bandwidth_bytes_per_s=m.vram_bandwidth_bytes_per_s,
            decode_ceiling_tokens_per_s=m.decode_ceiling_tokens_per_s,
            ram_read_bytes_per_s=m.ram_read_bytes_per_s,
            efficiency=m.efficiency,
        )
    if snap.moe_error:
        row["moe_error"] = snap.moe_error
    return row


def paired_vram(pid: int, n: int = 3) -> list[dict[str, Any]]:
    """``GpuProbe`` and nvidia-smi read back to back, ``n`` times (the server idle)."""
    probe = GpuProbe()
    pairs = []
    try:
        for _ in range(n):
            a = probe.sample({pid})
            smi = smi_reading()
            b = probe.sample({pid})
            pair: dict[str, Any] = {"gpu_reason": a.reason}
            if a.devices and b.devices:
                da, db = a.devices[0], b.devices[0]
                pair.update(
                    coder_vram_used_bytes=[da.vram_used_bytes, db.vram_used_bytes],
                    coder_vram_total_bytes=da.vram_total_bytes,
                    coder_server_vram_bytes=[da.server_vram_bytes, db.server_vram_bytes],
                    driver=a.driver_version,
                    name=da.name,
                )
            if smi is not None:
                pair.update(
                    smi_memory_used_mib=smi["memory.used"],
                    smi_memory_total_mib=smi["memory.total"],
                    smi_server_used_mib=smi["apps"].get(pid),
                    smi_apps=smi["apps"],
                )
            pairs.append(pair)
            time.sleep(0.3)
    finally:
        probe.close()
    return pairs


def _mean(values: Sequence[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return statistics.fmean(got) if got else None


def window(rows: list[dict[str, Any]], start: float, end: float) -> list[dict[str, Any]]:
    """Rows inside a phase; the first second is left out (its averages reach back before it)."""
    return [r for r in rows if start + 1.0 < r["t"] <= end + 0.2]


# -- one configuration ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    quant: str
    model: Path
    n_cpu_moe: int


async def run_case(case: Case, args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    settings = ServerSettings(
        port=free_port(), ready_timeout_s=180, stop_grace_s=5, log_dir=log_dir
    )
    profile = Profile(
        name=f"{case.quant.lower()}-ncmoe{case.n_cpu_moe}",
        model=case.model,
        ctx=args.ctx,
        n_gpu_layers=99,
        n_cpu_moe=case.n_cpu_moe,
        threads=args.threads,
        extra_args=("-np", "1"),
    )
    mgr = ServerManager(settings, log_dir=log_dir)
    t0 = time.monotonic()
    ready = await mgr.start(profile)
    result: dict[str, Any] = {
        "quant": case.quant,
        "n_cpu_moe": case.n_cpu_moe,
        "argv": mgr.argv,
        "load_s": ready.load_time_s,
        "pid": ready.pid,
    }
    print(f"  started {profile.name} (pid {ready.pid}) in {ready.load_time_s:.1f} s", flush=True)
    try:
        await asyncio.sleep(1.0)  # let the allocations settle
        result["idle_pairs"] = await asyncio.to_thread(paired_vram, ready.pid)
        sampler = MetricsSampler(mgr.url, config=SamplerConfig())
        sampler.watch(pid=ready.pid, profile=profile)
        rows: list[dict[str, Any]] = []

        async def record() -> None:
            async with contextlib.aclosing(sampler.run()) as it:
                async for snap in it:
                    rows.append(snap_row(snap))

        poller = SmiPoller() if shutil.which("nvidia-smi") else None
        async with httpx.AsyncClient(base_url=mgr.url, timeout=300, trust_env=False) as client:
            words, tokens = await calibrate_words(client, args.prompt_tokens)
            result["prompt_words"], result["prompt_tokens"] = words, tokens
            rec = asyncio.create_task(record())
            with poller or contextlib.nullcontext():
                await asyncio.sleep(2.5)  # sampler warm-up: first rates need a previous sample
                phases: dict[str, Any] = {}
                for name in ("prompt", "decode"):
                    dmon = start_dmon(int(args.phase_s) - 1) if poller else None
                    start = time.time()
                    if name == "prompt":
                        timings = await prompt_phase(client, args.phase_s, words, 1000)
                    else:
                        timings = await decode_phase(client, args.phase_s, args.n_predict)
                    end = time.time()
                    phases[name] = {
                        "start": start,
                        "end": end,
                        "timings": timings,
                        "dmon": await asyncio.to_thread(finish_dmon, dmon),
                    }
                    await asyncio.sleep(1.2)  # one more tick covering the phase's end
            rec.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await rec
        result["samples"] = rows
        result["smi"] = poller.readings if poller else []
        result["phases"] = phases
    finally:
        await mgr.stop()
    result["wall_s"] = time.monotonic() - t0
    result["summary"] = summarize(result)
    return result


def summarize(r: dict[str, Any]) -> dict[str, Any]:
    """The numbers docs/gpu-validation.md compares, from one configuration's readings."""
    s: dict[str, Any] = {"quant": r["quant"], "n_cpu_moe": r["n_cpu_moe"]}
    pairs = [p for p in r["idle_pairs"] if "coder_vram_used_bytes" in p]
    if pairs:
        s["name"], s["driver"] = pairs[0].get("name"), pairs[0].get("driver")
        coder = [_mean(p["coder_vram_used_bytes"]) for p in pairs]
        s["vram_used_mib_coder"] = _mean([c / MIB for c in coder if c is not None])
        s["vram_total_mib_coder"] = pairs[0]["coder_vram_total_bytes"] / MIB
        srv = [_mean(p["coder_server_vram_bytes"]) for p in pairs]
        s["server_vram_mib_coder"] = _mean([v / MIB for v in srv if v is not None])
    smi_pairs = [p for p in r["idle_pairs"] if p.get("smi_memory_used_mib") is not None]
    if smi_pairs:
        s["vram_used_mib_smi"] = _mean([p["smi_memory_used_mib"] for p in smi_pairs])
        s["vram_total_mib_smi"] = smi_pairs[0]["smi_memory_total_mib"]
        s["server_vram_mib_smi"] = _mean([p.get("smi_server_used_mib") for p in smi_pairs])
    if s.get("vram_used_mib_coder") and s.get("vram_used_mib_smi"):
        s["vram_rel_diff"] = s["vram_used_mib_coder"] / s["vram_used_mib_smi"] - 1
    rows, phases = r["samples"], r["phases"]
    for name, ph in phases.items():
        w = window(rows, ph["start"], ph["end"])
        smi = [x for x in r["smi"] if ph["start"] + 1 < x["t"] <= ph["end"]]
        t = ph["timings"]
        p: dict[str, Any] = {
            "seconds": ph["end"] - ph["start"],
            "requests": len(t),
            "sampler_ticks": len(w),
            "server_phases": sorted({x.get("phase", "?") for x in w}),
            "pcie_rx_mb_s_coder": _mean([x.get("pcie_rx_bytes_per_s") for x in w]),
            "pcie_tx_mb_s_coder": _mean([x.get("pcie_tx_bytes_per_s") for x in w]),
            "gpu_util_percent_coder": _mean([x.get("gpu_util_percent") for x in w]),
            "gpu_util_percent_smi": _mean([x.get("utilization.gpu") for x in smi]),
            "power_w_coder": _mean([x.get("power_w") for x in w]),
            "power_w_smi": _mean([x.get("power.draw") for x in smi]),
            "vram_used_mib_coder": _mean([x.get("vram_used_bytes") for x in w]),
            "vram_used_mib_smi": _mean([x.get("memory.used") for x in smi]),
            "server_cpu_percent": _mean([x.get("server_cpu_percent") for x in w]),
        }
        for key in ("pcie_rx_mb_s_coder", "pcie_tx_mb_s_coder"):
            if p[key] is not None:
                p[key] /= 1e6
        if p["vram_used_mib_coder"] is not None:
            p["vram_used_mib_coder"] /= MIB
        dmon = ph.get("dmon") or {}
        p["pcie_rx_mb_s_dmon"] = _mean([x["rx_mb_s"] for x in dmon.get("rows", [])])
        p["pcie_tx_mb_s_dmon"] = _mean([x["tx_mb_s"] for x in dmon.get("rows", [])])
        if name == "prompt":
            p["prompt_tokens_per_s_server"] = _mean([x.get("prompt_per_second") for x in t])
            p["prompt_tokens_per_request"] = _mean([x.get("prompt_n") for x in t])
            p["prompt_tokens_per_s_sampler"] = _mean([x.get("prompt_tokens_per_s") for x in w])
            per_ubatch = _mean([x.get("prompt_pcie_bytes_per_ubatch") for x in w])
            tps = p["prompt_tokens_per_s_server"]
            p["prompt_pcie_bytes_per_ubatch_model"] = per_ubatch
            if per_ubatch is not None and tps:
                p["pcie_rx_mb_s_model_busy"] = per_ubatch * tps / UBATCH / 1e6
        else:
            tps = _mean([x.get("predicted_per_second") for x in t])
            p["decode_tokens_per_s_server"] = tps
            p["decode_tokens_per_s_sampler_wall"] = _mean(
                [x.get("generation_tokens_per_s") for x in w]
            )
            p["decode_tokens_per_s_sampler_busy"] = _mean(
                [x.get("generation_tokens_per_busy_s") for x in w]
            )
            ram_bpt = _mean([x.get("ram_bytes_per_token") for x in w])
            p["ram_bytes_per_token"] = ram_bpt
            p["vram_bytes_per_token"] = _mean([x.get("vram_bytes_per_token") for x in w])
            p["ram_read_gb_s_sampler"] = _mean([x.get("ram_read_bytes_per_s") for x in w])
            if p["ram_read_gb_s_sampler"] is not None:
                p["ram_read_gb_s_sampler"] /= 1e9
            if ram_bpt is not None and tps:
                p["ram_read_gb_s_at_server_speed"] = ram_bpt * tps / 1e9
            p["ram_bandwidth_gb_s"] = _mean([x.get("ram_bandwidth_bytes_per_s") for x in w])
            p["vram_bandwidth_gb_s"] = _mean([x.get("vram_bandwidth_bytes_per_s") for x in w])
            for key in ("ram_bandwidth_gb_s", "vram_bandwidth_gb_s"):
                if p[key] is not None:
                    p[key] /= 1e9
            p["decode_ceiling_tokens_per_s"] = _mean(
                [x.get("decode_ceiling_tokens_per_s") for x in w]
            )
            p["efficiency_sampler"] = _mean([x.get("efficiency") for x in w])
            ceiling = p["decode_ceiling_tokens_per_s"]
            p["efficiency_at_server_speed"] = tps / ceiling if tps and ceiling else None
            p["bounds"] = sorted({x.get("bound", "?") for x in w})
        s[name] = p
    if phases:
        pr, de = s.get("prompt", {}), s.get("decode", {})
        a, b = pr.get("pcie_rx_mb_s_coder"), de.get("pcie_rx_mb_s_coder")
        s["pcie_rx_prompt_over_decode_coder"] = a / b if a is not None and b else None
        a, b = pr.get("pcie_rx_mb_s_dmon"), de.get("pcie_rx_mb_s_dmon")
        s["pcie_rx_prompt_over_decode_dmon"] = a / b if a is not None and b else None
    return s


# -- report --------------------------------------------------------------------------------------
def _f(value: Any, fmt: str = ".1f") -> str:
    if value is None:
        return "–"
    return format(value, fmt) if isinstance(value, (int, float)) else str(value)


def markdown(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        f"GPU: {meta.get('gpu')}; driver {meta.get('driver')}; host {meta.get('host')}; "
        f"{meta.get('date')}",
        "",
        "| quant | n-cpu-moe | VRAM used MiB coder / smi (diff) | server VRAM MiB coder / smi "
        "| PCIe RX prompt MB/s coder / dmon / model | PCIe RX decode MB/s coder / dmon "
        "| prompt tok/s | decode tok/s server / sampler busy / wall | RAM MB/token "
        "| CPU-MoE RAM GB/s sampler / at server speed | ceiling tok/s | efficiency |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r["summary"]
        pr, de = s.get("prompt", {}), s.get("decode", {})
        diff = s.get("vram_rel_diff")
        ram_bpt = de.get("ram_bytes_per_token")
        lines.append(
            "| "
            + " | ".join(
                [
                    s["quant"],
                    str(s["n_cpu_moe"]),
                    f"{_f(s.get('vram_used_mib_coder'), '.0f')} / "
                    f"{_f(s.get('vram_used_mib_smi'), '.0f')} "
                    f"({_f(diff * 100 if diff is not None else None, '+.2f')} %)",
                    f"{_f(s.get('server_vram_mib_coder'), '.0f')} / "
                    f"{_f(s.get('server_vram_mib_smi'), '.0f')}",
                    f"{_f(pr.get('pcie_rx_mb_s_coder'), '.0f')} / "
                    f"{_f(pr.get('pcie_rx_mb_s_dmon'), '.0f')} / "
                    f"{_f(pr.get('pcie_rx_mb_s_model_busy'), '.0f')}",
                    f"{_f(de.get('pcie_rx_mb_s_coder'), '.0f')} / "
                    f"{_f(de.get('pcie_rx_mb_s_dmon'), '.0f')}",
                    _f(pr.get("prompt_tokens_per_s_server"), ".0f"),
                    f"{_f(de.get('decode_tokens_per_s_server'))} / "
                    f"{_f(de.get('decode_tokens_per_s_sampler_busy'))} / "
                    f"{_f(de.get('decode_tokens_per_s_sampler_wall'))}",
                    _f(ram_bpt / 1e6 if ram_bpt is not None else None, ".2f"),
                    f"{_f(de.get('ram_read_gb_s_sampler'), '.2f')} / "
                    f"{_f(de.get('ram_read_gb_s_at_server_speed'), '.2f')}",
                    _f(de.get("decode_ceiling_tokens_per_s"), ".0f"),
                    _f(de.get("efficiency_at_server_speed"), ".2f"),
                ]
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


async def main_async(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_dir = Path(args.work) / "logs"
    t_start = time.monotonic()
    demo = prepare_demo(
        Path(args.work) / "demo",
        args.size,
        quants=tuple(args.quants),
        port=free_port(),
        progress=lambda m: print("  demo:", m, flush=True),
    )
    print(f"demo model ready in {time.monotonic() - t_start:.1f} s", flush=True)
    meta: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
        "size": args.size,
        "ctx": args.ctx,
        "threads": args.threads,
        "phase_s": args.phase_s,
        "n_predict": args.n_predict,
        "ram_bandwidth_bytes_per_s_numpy": moe.measure_ram_bandwidth(),
    }
    smi = _smi(
        [
            "--query-gpu=name,driver_version,pcie.link.gen.current,pcie.link.width.current",
            "--format=csv,noheader",
        ]
    )
    if smi:
        meta["gpu"], meta["driver"] = smi[0][0], smi[0][1]
        meta["smi_pcie_link"] = smi[0][2:]
    layouts = {}
    cases = []
    for i, quant in enumerate(args.quants):
        model = demo.models[quant.lower()]
        lay = read_layout(model)
        layouts[quant] = {
            "file_bytes": model.stat().st_size,
            "blocks": lay.block_count,
            "experts": lay.expert_count,
            "experts_used": lay.expert_used_count,
        }
        ncmoe = args.ncmoe if i == 0 else args.ncmoe_extra
        cases += [Case(quant, model, n) for n in ncmoe]
    meta["layouts"] = layouts
    results: list[dict[str, Any]] = []
    est = None
    for case in cases:
        left = args.deadline - time.time() if args.deadline else None
        if left is not None and est is not None and left < est * 1.2:
            print(f"skip {case}: {left:.0f} s left, a case takes ~{est:.0f} s", flush=True)
            continue
        print(f"case {case.quant} --n-cpu-moe {case.n_cpu_moe}", flush=True)
        try:
            r = await run_case(case, args, log_dir)
        except Exception as exc:  # one failing case must not lose the others' results
            print(f"  FAILED: {type(exc).__name__}: {exc}", flush=True)
            results.append({"quant": case.quant, "n_cpu_moe": case.n_cpu_moe, "error": str(exc)})
            continue
        est = max(est or 0.0, r["wall_s"])
        results.append(r)
        print("  summary:", json.dumps(r["summary"], default=str), flush=True)
        # write after every case: a timeout still leaves what was measured
        ok = [x for x in results if "summary" in x]
        (out / "validate.json").write_text(
            json.dumps({"meta": meta, "results": results}, default=str, indent=1)
        )
        (out / "validate.md").write_text(markdown(ok, meta))
    ok = [x for x in results if "summary" in x]
    print(markdown(ok, meta), flush=True)
    return 0 if ok and len(ok) == len(results) else 1


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for validate.json and validate.md")
    ap.add_argument("--work", default="/tmp/gpu_validate", help="demo model and server logs")
    ap.add_argument("--size", default="bench", help="demo model size (small for a dry run)")
    ap.add_argument("--quants", nargs="+", default=["Q4_K_M", "Q8_0"])
    ap.add_argument("--ncmoe", type=int, nargs="+", default=[0, 8, 16])
    ap.add_argument("--ncmoe-extra", type=int, nargs="*", default=[0, 16])
    ap.add_argument("--ctx", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--prompt-tokens", type=int, default=6000)
    ap.add_argument("--phase-s", type=float, default=8.0)
    ap.add_argument("--n-predict", type=int, default=256)
    ap.add_argument("--deadline", type=float, default=None, help="epoch s: start no case after")
    args = ap.parse_args(argv)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
