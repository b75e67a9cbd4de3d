"""Issue 22 on the GPU host: fit, llama.cpp's --fit and tune on shape-only Qwen3-Coder-Next at the
seed's sizes, with the seed's flags; run by scripts/gpu_fit_check.sh (both quants in one call).

For each quant (IQ2_XXS 26 GB, IQ3_XXS 33 GB, files made by ``core/demo/shape_model.py``):

1. the seed's config (``-ngl 42 --n-cpu-moe 10`` / ``-ngl 34 --n-cpu-moe 18``) runs first; what
   the process holds beyond llama.cpp's CUDA0 buffers (NVML peak after generating minus the
   buffers the server logs) is this machine's CUDA runtime share, and ``fit`` plans with it and
   with llama-fit-params' CUDA compute estimate per placement kind (``compute_by_kind``), checked
   for the pick's own flags (``confirm``);
2. ``fit``'s first pick;
3. llama.cpp's own ``--fit`` (no placement flags); the placement it chose is read from its log;
4. tune: ``-ub 512 -np 1`` (smaller compute buffer and recurrent state), re-planned by ``fit``
   (``-t 12`` and ``--load-mode none`` gained nothing in the first run, docs/gpu-validation.md);
5. two more placements ``fit`` offers, of other kinds than the pick: the first layers' experts in
   RAM at the pick's ``-ngl``, and some layers on the CPU (``-ngl`` halfway to the seed's).

Each run: start llama-server (``-lv 4``), wait until healthy, NVML's process VRAM at load,
``--repeats`` generations of ``--tokens`` tokens (``ignore_eos``), the fastest counts; NVML sampled
every 0.1 s throughout, the peak after generating kept. Then the speed model is calibrated on ONE
run (fit's pick) and predicts the others (and, for comparison, on all runs).

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
from coder_tui.core.tune.fit import FitOption, FitRequest, advise, option_traffic, parse_size
from coder_tui.core.tune.llama_fit import compute_by_kind, compute_of, placement_from_fit_log
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
    a: argparse.Namespace, layout: GgufLayout, vram: int, overhead: int | None, **changes: Any
) -> FitRequest:
    """The fit request for the server's settings (``changes``: a tune variant's ubatch/slots),
    with llama-fit-params' CUDA compute estimates where it gives them (a GPU)."""
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
    req = dataclasses.replace(req, **changes)
    if overhead is not None:
        req = dataclasses.replace(req, overhead_bytes=overhead)
    if a.fit_params and a.gpu:
        source = compute_by_kind(Path(a.fit_params), a.model_path, req, layout.n_layer_trunk)
        req = dataclasses.replace(req, gpu_compute_source=source)
    return req


def confirm(
    a: argparse.Namespace, layout: GgufLayout, req: FitRequest
) -> tuple[FitRequest, FitOption | None]:
    """fit's pick for ``req``, its CUDA compute checked by llama-fit-params for the pick's own
    flags: where that says more than the pick was planned with, plan again with it (3 times at
    most); never less (the kinds' figures stay the safe side)."""
    report = advise(layout, req)
    for _ in range(3):
        pick = report.best
        if pick is None or not (a.fit_params and a.gpu):
            break
        said = compute_of(Path(a.fit_params), a.model_path, req, pick.flags())
        print(
            f"llama-fit-params: CUDA compute of {pick.label()}: {said} (planned {pick.compute_bytes})"
        )
        if said is None or said <= pick.compute_bytes:
            break
        source = {**dict(req.gpu_compute_source), pick.kind: said}
        req = dataclasses.replace(req, gpu_compute_source=tuple(source.items()))
        report = advise(layout, req)
    return req, report.best


def plain(o: FitOption) -> bool:
    """A ``-ngl``/``--n-cpu-moe`` placement (no ``-ot``)."""
    return not o.cpu_parts and not o.tail_start


def check_quant(a: argparse.Namespace, quant: str, model: Path, deadline: float) -> dict[str, Any]:
    layout = read_layout(model)
    a.model_path = model
    vram = parse_size(a.vram) if a.vram else free_vram(a)
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
    req, pick = confirm(a, layout, req)
    out["gpu_compute_source_mib"] = {k: v / MIB for k, v in req.gpu_compute_source}
    report = advise(layout, req)
    out["fit_pick"] = pick.label() if pick else None
    reqs: dict[str, FitRequest] = {}
    picks: dict[str, FitOption] = {}
    if pick is not None:
        go("pick", [*pick.flags(), *threads], "fit's first pick")
        row = go("llama-fit", list(threads), "llama.cpp --fit")
        if row is not None:  # the placement the server's own fit chose, from its log
            log = (Path(a.out) / "logs" / f"{quant}-llama-fit.log").read_text(errors="replace")
            row["placement_for_prediction"] = placement_from_fit_log(log)
            out["llama_fit_placement"] = " ".join(row["placement_for_prediction"])
        # tune: smaller buffers (-ub 512, one slot) free VRAM for experts; fit re-plans for them.
        small, tuned_pick = confirm(
            a, layout, request(a, layout, vram, overhead, ubatch=512, parallel=1)
        )
        if tuned_pick is not None:
            reqs[f"{quant}-tune-small"] = small
            go(
                "tune-small",
                [*tuned_pick.flags(), *threads, "-ub", "512", "-np", "1"],
                "tune: -ub 512 -np 1",
            )
        # two more placements fit offers, of other kinds than the pick, to check the prediction
        heads = [
            o
            for o in report.options
            if plain(o) and o.n_gpu_layers == pick.n_gpu_layers and o.flags() != pick.flags()
        ]
        if heads:
            h = heads[0]
            go("head", [*h.flags(), *threads], "other: first layers' experts in RAM")
        mid_ngl = (int(seed[1]) + pick.n_gpu_layers) // 2
        mids = [o for o in report.options if plain(o) and o.n_gpu_layers == mid_ngl]
        if mids:
            go("mid", [*mids[0].flags(), *threads], "other: layers on the CPU")
        margin = parse_size(a.margin) / MIB
        tuned = [
            r
            for r in runs
            if r["role"] in ("fit's first pick", "tune: -ub 512 -np 1")
            and r.get("tokens_per_s")
            and (not r.get("vram_peak_mib") or vram / MIB - r["vram_peak_mib"] >= margin)
        ]
        winner = max(tuned, key=lambda r: r["tokens_per_s"], default=None)
        if winner is not None:
            winner["tune_winner"] = True
        picks["fit's pick"] = pick
        if tuned_pick is not None:
            picks["fit's pick at -ub 512 -np 1"] = tuned_pick

    def placement_of(r: dict[str, Any]) -> list[str]:
        if r.get("placement_for_prediction"):
            return list(r["placement_for_prediction"])
        drop = {"--load-mode", "none", "-ub", "512", "-np", "1"}
        return [w for w in r["flags"].split() if w not in drop]

    for r in runs:  # our prediction for every run, with the request it ran under
        placement = placement_of(r)
        r_req = reqs.get(r["name"], req)
        r["predicted_vram_mib"] = vram_for_args(layout, r_req, placement) / MIB
        r["traffic"] = dataclasses.asdict(traffic_for_args(layout, placement))
        peak = r.get("vram_peak_mib")
        if peak:
            r["vram_error_pct"] = (r["predicted_vram_mib"] - peak) / peak * 100
    ok = [r for r in runs if r.get("status") == "ok" and r.get("tokens_per_s")]

    def measured(r: dict[str, Any]) -> Measured:
        return Measured(
            r["name"], traffic_for_args(layout, placement_of(r)), r["tokens_per_s"], r["role"]
        )

    cal_role = "fit's first pick" if any(r["role"] == "fit's first pick" for r in ok) else "seed"
    out["calibrated_on"] = cal_role
    for key, pts in (("one", [r for r in ok if r["role"] == cal_role]), ("all", ok)):
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
        if key == "one":
            out["picks_predicted_tps"] = {
                k: model_.tokens_per_s(option_traffic(o)) for k, o in picks.items()
            }
    out["ram_bandwidth"] = dataclasses.asdict(ram_bandwidth(a.threads, Path(a.out) / "cache"))
    return out


def free_vram(a: argparse.Namespace) -> int:
    """GPU 0's free VRAM now (the ballast holds the rest); its bandwidth goes into ``a``."""
    probe = GpuProbe()
    try:
        snap = probe.sample()
    finally:
        probe.close()
    dev = snap.devices[0]
    a.vram_bw = dev.vram_bandwidth_bytes_per_s or a.vram_bw
    return int(dev.vram_free_bytes or 0)


def table(res: dict[str, Any]) -> list[str]:
    lines = [
        f"### {res['quant']}: free VRAM {res['vram_free_bytes'] / MIB:,.0f} MiB, fit's pick "
        f"`{res.get('fit_pick')}`, CUDA runtime share from the seed run "
        f"{res.get('overhead_mib') or 0:,.0f} MiB; CUDA compute from llama-fit-params: "
        f"{json.dumps(res.get('gpu_compute_source_mib') or 'none (the model)')}; llama.cpp --fit "
        f"placed: `{res.get('llama_fit_placement') or '?'}`",
        "",
        "| run | flags | t/s | VRAM at load / peak (NVML MiB) | CUDA0 buffers MiB | predicted MiB | "
        f"error | t/s predicted (calibrated on {res.get('calibrated_on', 'seed')} / on all) |",
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
    for role in ("fit's first pick", "seed", "llama.cpp --fit", "tune: -ub 512 -np 1"):
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
    if winner and llama and winner["tokens_per_s"] < 1.1 * llama:
        picks = res.get("picks_predicted_tps") or {}
        said = ", ".join(f"{k} {v:.1f}" for k, v in picks.items())
        out.append(
            f"- 1.1x llama.cpp --fit is {1.1 * llama:.1f} t/s; tune tried -ub 512 -np 1 (smaller "
            "buffers, more experts on the card); -t 12 and --load-mode none gained nothing in the "
            "first run (docs/gpu-validation.md)"
            + (f"; predicted (calibrated): {said}" if said else "")
        )
    cal = res.get("calibrated_on", "seed")
    errs = [
        (r["role"], (r["predicted_tps_one"] - r["tokens_per_s"]) / r["tokens_per_s"] * 100)
        for r in res["runs"]
        if r.get("predicted_tps_one")
        and r.get("tokens_per_s")
        and r["role"] != cal
        and not r["role"].startswith("tune")
    ]
    if errs:
        within = sum(1 for _, e in errs if abs(e) <= 15)
        text = ", ".join(f"{role} {e:+.1f} %" for role, e in errs)
        out.append(
            f"- calibrated on one placement ({cal}) alone, predicted t/s of {len(errs)} others: "
            f"{text} ({within} of {len(errs)} within 15 %; "
            f"{'holds' if within >= 3 and len(errs) >= 3 else 'does not hold'}: 3 needed)"
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
    p.add_argument("--repeats", type=int, default=2)
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
