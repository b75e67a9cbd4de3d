"""Issue 22 on the GPU host: fit, llama.cpp's --fit and a short tune sweep on shape-only
Qwen3-Coder-Next at the seed's sizes, with the seed's flags; run by scripts/gpu_fit_check.sh.

For each quant (IQ2_XXS 26 GB, IQ3_XXS 33 GB, files made by ``core/gguf/shape_model.py``):

1. the seed's config (``-ngl 42 --n-cpu-moe 10`` / ``-ngl 34 --n-cpu-moe 18``) runs first; what
   the process holds beyond llama.cpp's CUDA0 buffers (NVML peak after generating minus the
   buffers the server logs) is this machine's CUDA runtime share, and ``fit`` plans with it;
2. ``fit``'s first pick (``core.tune.fit.advise`` with the card's free VRAM and the margin);
3. llama.cpp's own ``--fit`` (no placement flags: llama-server places the experts itself);
4. tune's dimensions on the pick: ``-t 12`` and ``--load-mode none`` (the pick runs ``-t 16``
   with mmap), then both winners together: the fastest that fits is tune's winner;
5. two more placements for calibration (the pick's cut + 2, and halfway to the seed).

Each run: start llama-server (``-lv 4``), wait until healthy, NVML's process VRAM at load, three
generations of ``--tokens`` tokens (``ignore_eos``), the fastest counts; NVML sampled every 0.1 s
throughout, the peak after generating kept. Then the speed model is calibrated on ONE run (the
seed's) and on all, and each run's prediction is set beside its measurement.

Writes ``fit_check.json`` (every reading), ``fit_check.md`` (one table per quant and the checks)
and keeps every server log for the tarball. Without a GPU (dry run) it uses ``--vram`` and the
tiny shape model, and NVML figures are empty.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from coder_tui.core.gguf.buffer_log import parse_buffers
from coder_tui.core.gguf.layout import GgufLayout, read_layout
from coder_tui.core.metrics.gpu import GpuProbe
from coder_tui.core.server.ports import free_port
from coder_tui.core.tune.fit import FitRequest, advise, parse_size
from coder_tui.core.tune.measured import ram_bandwidth, traffic_for_args, vram_for_args
from coder_tui.core.tune.speed import Measured, calibrate

MIB = 1 << 20
SEED = {
    "IQ2_XXS": ["-ngl", "42", "--n-cpu-moe", "10"],
    "IQ3_XXS": ["-ngl", "34", "--n-cpu-moe", "18"],
}


class Watch:
    """NVML process VRAM of one pid every 0.1 s in a thread; ``peak`` and ``last``."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self.last = pid, 0, 0
        self.probe = GpuProbe()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                snap = self.probe.sample({self.pid})
                used = sum(d.server_vram_bytes or 0 for d in snap.devices)
            except Exception:  # a probe never stops the run
                used = 0
            self.last = used
            self.peak = max(self.peak, used)
            time.sleep(0.1)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.probe.close()


def run_server(a: argparse.Namespace, model: Path, flags: list[str], name: str) -> dict[str, Any]:
    """One configuration: start, measure, stop; every reading in a dict."""
    import subprocess

    port = free_port()
    log_path = Path(a.out) / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = [a.server, "-m", str(model), *a.common.split(), *flags]
    argv += ["--host", "127.0.0.1", "--port", str(port), "-lv", "4"]
    row: dict[str, Any] = {"name": name, "flags": " ".join(flags), "argv": argv}
    t0 = time.monotonic()
    with log_path.open("w") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    watch = Watch(proc.pid) if a.gpu else None
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=120.0) as http:
            while time.monotonic() - t0 < a.load_timeout:
                if proc.poll() is not None:
                    raise RuntimeError(f"exited with {proc.returncode}")
                try:
                    if http.get("/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.25)
            else:
                raise RuntimeError("not ready in time")
            row["load_s"] = time.monotonic() - t0
            time.sleep(0.5)
            row["vram_at_load_mib"] = watch.last / MIB if watch else None
            speeds = []
            for i in range(a.repeats):
                body = {
                    "prompt": f"Write a long story about a server, part {i}.",
                    "n_predict": a.tokens,
                    "ignore_eos": True,
                    "cache_prompt": False,
                    "temperature": 0.0,
                }
                r = http.post("/completion", json=body).json()
                speeds.append(float(r.get("timings", {}).get("predicted_per_second") or 0.0))
            time.sleep(0.5)
            row["tokens_per_s_all"] = speeds
            row["tokens_per_s"] = max(speeds)
            row["status"] = "ok"
    except (RuntimeError, httpx.HTTPError, ValueError) as exc:
        row["status"] = f"failed: {exc}"
    finally:
        if watch is not None:
            row["vram_peak_mib"] = watch.peak / MIB
            watch.close()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    text = log_path.read_text(errors="replace")
    buffers = parse_buffers(text)
    row["buffers_mib"] = {f"{k[0]} {k[1]}": v for k, v in buffers.mib.items()}
    row["cuda0_mib"] = buffers.device("CUDA0")
    row["cuda0_total_mib"] = buffers.total_mib("CUDA0")
    row["elapsed_s"] = time.monotonic() - t0
    if "out of memory" in text.lower() and row.get("status") != "ok":
        row["status"] = "out of memory"
    print(f"[{name}] {json.dumps({k: v for k, v in row.items() if k != 'argv'})}", flush=True)
    return row


def request(
    a: argparse.Namespace, layout: GgufLayout, vram: int, overhead: int | None
) -> FitRequest:
    bw = ram_bandwidth(a.threads, Path(a.out) / "cache")
    req = FitRequest(
        vram_bytes=vram,
        ctx=a.ctx,
        ram_bandwidth_bytes_per_s=bw.bytes_per_s,
        vram_bandwidth_bytes_per_s=a.vram_bw,
        cache_type_k="q4_0",
        cache_type_v="q4_0",
        ubatch=a.ubatch,
        batch=a.batch,
        flash_attn=True,
        margin_bytes=parse_size(a.margin),
    )
    return dataclasses.replace(req, overhead_bytes=overhead) if overhead is not None else req


def check_quant(a: argparse.Namespace, quant: str, model: Path, deadline: float) -> dict[str, Any]:
    layout = read_layout(model)
    vram = parse_size(a.vram) if a.vram else free_vram()
    out: dict[str, Any] = {"quant": quant, "model": str(model), "vram_free_bytes": vram, "runs": []}
    runs: list[dict[str, Any]] = out["runs"]
    threads = ["-t", str(a.threads)]

    def go(name: str, flags: list[str], role: str) -> dict[str, Any] | None:
        if time.monotonic() > deadline - a.reserve_s:
            print(f"[{quant}] skipped {name}: out of time", flush=True)
            return None
        row = run_server(a, model, flags, f"{quant}-{name}")
        row["role"] = role
        runs.append(row)
        return row

    seed = SEED.get(quant, ["-ngl", "3", "--n-cpu-moe", "2"])
    first = go("seed", [*seed, *threads], "seed")
    overhead = None
    if first and first.get("vram_peak_mib") and first.get("cuda0_total_mib"):
        overhead = int((first["vram_peak_mib"] - first["cuda0_total_mib"]) * MIB)
    out["overhead_mib"] = overhead / MIB if overhead is not None else None
    req = request(a, layout, vram, overhead)
    report = advise(layout, req)
    pick = report.best
    out["fit_pick"] = pick.label() if pick else None
    if pick is not None:
        go("pick", [*pick.flags(), *threads], "fit's first pick")
        fitted = llama_fit_placement(a, model)
        out["llama_fit_params_placement"] = " ".join(fitted)
        row = go("llama-fit", list(threads), "llama.cpp --fit")
        if row is not None:
            row["placement_for_prediction"] = fitted
        t12 = go("pick-t12", [*pick.flags(), "-t", "12"], "tune: threads")
        lm = go("pick-load-none", [*pick.flags(), *threads, "--load-mode", "none"], "tune: load")
        cut = max(pick.n_cpu_moe, 1)
        go("cut+2", ["-ngl", str(pick.n_gpu_layers), "--n-cpu-moe", str(cut + 2), *threads], "cal")
        mid_ngl = (int(seed[1]) + pick.n_gpu_layers) // 2
        mid_cut = (int(seed[3]) + cut) // 2
        go("mid", ["-ngl", str(mid_ngl), "--n-cpu-moe", str(mid_cut), *threads], "calibration")
        base = next((r for r in runs if r["name"].endswith("-pick")), None)
        gained = [
            r
            for r in (t12, lm)
            if r and base and (r.get("tokens_per_s") or 0) > (base.get("tokens_per_s") or 0)
        ]
        if t12 in gained and lm in gained:
            go("tune-both", [*pick.flags(), "-t", "12", "--load-mode", "none"], "tune: both")
        margin = parse_size(a.margin) / MIB
        tuned = [
            r
            for r in runs
            if r["role"] in ("fit's first pick", "tune: threads", "tune: load", "tune: both")
            and r.get("tokens_per_s")
            and (not r.get("vram_peak_mib") or vram / MIB - r["vram_peak_mib"] >= margin)
        ]
        winner = max(tuned, key=lambda r: r["tokens_per_s"], default=None)
        if winner is not None:
            winner["tune_winner"] = True

    def placement_of(r: dict[str, Any]) -> list[str]:
        if "placement_for_prediction" in r:
            return list(r["placement_for_prediction"])
        return [w for w in r["flags"].split() if w not in ("--load-mode", "none")]

    for r in runs:  # our prediction for every run, with the same request
        placement = placement_of(r)
        r["predicted_vram_mib"] = vram_for_args(layout, req, placement) / MIB
        r["traffic"] = dataclasses.asdict(traffic_for_args(layout, placement))
        peak = r.get("vram_peak_mib")
        if peak:
            r["vram_error_pct"] = (r["predicted_vram_mib"] - peak) / peak * 100
    ok = [r for r in runs if r.get("status") == "ok" and r.get("tokens_per_s")]

    def measured(r: dict[str, Any]) -> Measured:
        return Measured(
            r["name"], traffic_for_args(layout, placement_of(r)), r["tokens_per_s"], r["role"]
        )

    for key, pts in (("one", [r for r in ok if r["role"] == "seed"]), ("all", ok)):
        if not pts:
            continue
        model_ = calibrate(
            [measured(r) for r in pts],
            ram_copy_bandwidth=req.ram_bandwidth_bytes_per_s,
            vram_bandwidth=a.vram_bw,
        )
        out[f"speed_{key}"] = {
            "fixed_ms": model_.fixed_s * 1e3,
            "per_split_ms": model_.per_split_s * 1e3,
            "ram_gbps": model_.ram_bandwidth_bytes_per_s / 1e9,
            "fitted": model_.fitted,
        }
        for r in ok:
            r[f"predicted_tps_{key}"] = model_.tokens_per_s(measured(r).traffic)
    out["ram_bandwidth"] = dataclasses.asdict(ram_bandwidth(a.threads, Path(a.out) / "cache"))
    return out


def llama_fit_placement(a: argparse.Namespace, model: Path) -> list[str]:
    """What llama-fit-params chooses for the server's settings (4 slots), as placement flags."""
    import subprocess

    from coder_tui.core.tune.llama_fit import FitParamsAnswer, fitted_placement

    if not a.fit_params:
        return []
    common = [w for w in a.common.split() if w != "--cont-batching"]  # a server-only flag
    argv = [a.fit_params, "-m", str(model), *common, "-np", "4", "-t", str(a.threads)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"llama-fit-params: {exc}", flush=True)
        return []
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("-c ")), "")
    print(f"llama-fit-params: {line or proc.stderr[-500:]}", flush=True)
    return fitted_placement(FitParamsAnswer(fitted_args=line or None))


def free_vram() -> int:
    probe = GpuProbe()
    try:
        snap = probe.sample()
    finally:
        probe.close()
    return int(snap.devices[0].vram_free_bytes or 0)


def table(res: dict[str, Any]) -> list[str]:
    lines = [
        f"### {res['quant']}: free VRAM {res['vram_free_bytes'] / MIB:,.0f} MiB, fit's pick "
        f"`{res.get('fit_pick')}`, CUDA runtime share from the seed run "
        f"{res.get('overhead_mib') or 0:,.0f} MiB",
        "",
        "| run | flags | t/s | VRAM at load / peak (NVML MiB) | CUDA0 buffers MiB | predicted MiB | "
        "error | t/s predicted (calibrated on seed / on all) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in res["runs"]:
        tps = f"{r['tokens_per_s']:.1f}" if r.get("tokens_per_s") else r.get("status")
        err = f"{r['vram_error_pct']:+.2f} %" if "vram_error_pct" in r else "-"
        p1, p2 = r.get("predicted_tps_one"), r.get("predicted_tps_all")
        pred = f"{p1 or 0:.1f} / {p2 or 0:.1f}" if p1 or p2 else "-"
        lines.append(
            f"| {r['role']} | `{r['flags']}` | {tps} | {r.get('vram_at_load_mib') or 0:,.0f} / "
            f"{r.get('vram_peak_mib') or 0:,.0f} | {r.get('cuda0_total_mib') or 0:,.1f} | "
            f"{r.get('predicted_vram_mib', 0):,.0f} | {err} | {pred} |"
        )
    for key in ("speed_one", "speed_all"):
        if key in res:
            lines.append(f"\n{key}: {json.dumps(res[key])}")
    lines += ["", *checks(res)]
    return lines


def checks(res: dict[str, Any]) -> list[str]:
    """The issue's acceptance, one line each (holds / does not hold / not measured)."""
    by = {r["role"]: r for r in res["runs"]}
    free = res["vram_free_bytes"] / MIB
    out = []

    def tps(role: str) -> float | None:
        r = by.get(role)
        return r.get("tokens_per_s") if r else None

    pick, seed, llama = by.get("fit's first pick"), tps("seed"), tps("llama.cpp --fit")
    winner = next((r for r in res["runs"] if r.get("tune_winner")), None)
    if pick and pick.get("vram_peak_mib"):
        left = free - pick["vram_peak_mib"]
        out.append(
            f"- pick leaves {left:,.0f} MiB free after generating (margin 512): "
            f"{'holds' if left >= 512 else 'does not hold'}"
        )
    for role in ("fit's first pick", "seed"):
        r = by.get(role)
        if r and "vram_error_pct" in r:
            e = r["vram_error_pct"]
            ok = abs(e) <= 2 and e >= -1
            out.append(
                f"- VRAM predicted vs NVML peak, {role}: {e:+.2f} % "
                f"({'holds' if ok else 'does not hold'}: within 2 %, never more than 1 % under)"
            )
    if pick and pick.get("tokens_per_s") and seed:
        ratio = pick["tokens_per_s"] / seed
        out.append(
            f"- pick / seed: {ratio:.2f}x ({'holds' if ratio >= 1.5 else 'does not hold'}: >= 1.5x)"
        )
    if pick and pick.get("tokens_per_s") and llama:
        ratio = pick["tokens_per_s"] / llama
        out.append(
            f"- pick / llama.cpp --fit: {ratio:.2f}x ({'holds' if ratio >= 1 else 'does not hold'})"
        )
    if winner and llama:
        ratio = winner["tokens_per_s"] / llama
        out.append(
            f"- tune's winner (`{winner['flags']}`) / llama.cpp --fit: {ratio:.2f}x "
            f"({'holds' if ratio >= 1.1 else 'does not hold'}: >= 1.1x)"
        )
    errs = [
        (r["role"], (r["predicted_tps_one"] - r["tokens_per_s"]) / r["tokens_per_s"] * 100)
        for r in res["runs"]
        if r.get("predicted_tps_one")
        and r.get("tokens_per_s")
        and r["role"] != "seed"
        and "--load-mode" not in r["flags"]
        and " -t 12" not in " " + r["flags"]
    ]
    if errs:
        within = sum(1 for _, e in errs if abs(e) <= 15)
        text = ", ".join(f"{role} {e:+.1f} %" for role, e in errs)
        out.append(
            f"- calibrated on the seed's run alone, predicted t/s: {text} "
            f"({within} of {len(errs)} within 15 %; target: 3)"
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", nargs="+", required=True, metavar="QUANT=PATH")
    p.add_argument("--server", required=True)
    p.add_argument("--fit-params", help="llama-fit-params, for its placement beside ours")
    p.add_argument("--out", required=True)
    p.add_argument("--ctx", type=int, default=200000)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--ubatch", type=int, default=1024)
    p.add_argument("--threads", type=int, default=16)
    p.add_argument("--margin", default="512MiB")
    p.add_argument("--vram", help="dry run: plan for this much VRAM (no NVML)")
    p.add_argument("--vram-bw", type=float, default=3.35e12)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--load-timeout", type=float, default=180.0)
    p.add_argument("--budget-s", type=float, default=560.0)
    p.add_argument("--reserve-s", type=float, default=40.0)
    a = p.parse_args()
    a.gpu = a.vram is None
    a.common = (
        f"-c {a.ctx} -b {a.batch} -ub {a.ubatch} --cache-type-k q4_0 --cache-type-v q4_0 "
        "--flash-attn on --cont-batching"
    )
    deadline = time.monotonic() + a.budget_s
    results = []
    out = Path(a.out)
    for i, item in enumerate(a.models):
        quant, _, path = item.partition("=")
        share = (deadline - time.monotonic()) / (len(a.models) - i)  # each quant its share
        results.append(check_quant(a, quant, Path(path), time.monotonic() + share))
        (out / "fit_check.json").write_text(json.dumps(results, indent=1, default=str))
    md = [line for res in results for line in [*table(res), ""]]
    (out / "fit_check.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
