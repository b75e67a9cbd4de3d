"""Issue 7, acceptance 2: fit's advice and tune's pick against reality (run by gpu_fit_validate.sh).

Steps: read the free VRAM (NVML, or ``--vram`` in a dry run), run ``core.fit.advise`` for the model,
start llama-server with the best advice, measure its process VRAM (NVML) after a generation and a
long prompt, compare with the prediction (goal: within 10 %); then run ``core.tune`` around the
advice and an exhaustive ``--n-cpu-moe`` sweep at the same ``-ngl`` (goal: tune's pick within 5 %
of the sweep's best tokens/s). Writes ``fit_validate.json`` and ``fit_validate.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from coder_tui.core.config.loader import Config, Profile, ServerSettings
from coder_tui.core.gguf.layout import read_layout
from coder_tui.core.metrics.gpu import GpuProbe
from coder_tui.core.metrics.moe import measure_ram_bandwidth
from coder_tui.core.paths import app_paths
from coder_tui.core.server.ports import free_port
from coder_tui.core.tune.fit import FitRequest, advise, parse_size
from coder_tui.core.tune.sweep import around, tune
from coder_tui.core.tune.trial import measure_trial
from coder_tui.core.tune.types import Candidate, Trial, TuneFinished, TuneSettings


def _free_vram(gpu: int) -> tuple[int | None, float | None]:
    probe = GpuProbe()
    try:
        snap = probe.sample()
    finally:
        probe.close()
    for d in snap.devices:
        if d.index == gpu and d.vram_free_bytes is not None:
            return d.vram_free_bytes, d.vram_bandwidth_bytes_per_s
    return None, None


_BUFFER = re.compile(r"(\S+) (model|KV|compute|RS|output) buffer size =\s*([0-9.]+) MiB")


def _newest_log_buffers() -> dict[str, float]:
    """``{"CUDA0 model": MiB, ...}`` from the newest server log (what llama.cpp allocated)."""
    logs = sorted(app_paths().log_dir.glob("*.log"), key=lambda p: p.stat().st_mtime)
    found: dict[str, float] = {}
    if logs:
        text = logs[-1].read_text(errors="replace")
        text = text[text.rfind("loading model") :]  # runs within one second share a log file
        for m in _BUFFER.finditer(text):
            key = f"{m.group(1)} {m.group(2)}"
            found[key] = found.get(key, 0.0) + float(m.group(3))
    return found


def _placement(layout: Any, req: FitRequest, ngl: int, ncmoe: int) -> Any:
    """Our prediction for one placement (any VRAM: every placement 'fits' a huge card)."""
    big = replace(req, vram_bytes=1 << 50)
    for o in advise(layout, big).options:
        if o.n_gpu_layers == ngl and o.n_cpu_moe == ncmoe:
            return o
    return None


async def calibrate(a: argparse.Namespace, layout: Any, req: FitRequest) -> list[dict[str, Any]]:
    """Each placement of ``--calibrate``: llama.cpp's buffers and NVML's process VRAM vs ours."""
    rows: list[dict[str, Any]] = []
    for item in a.calibrate.split(","):
        ngl, ncmoe, ctx, fa = item.split(":")
        creq = replace(req, ctx=int(ctx), flash_attn=fa == "on")
        pred = _placement(layout, creq, int(ngl), int(ncmoe))
        profile = Profile(
            name="cal", model=Path(a.model), ctx=int(ctx), n_gpu_layers=int(ngl),
            n_cpu_moe=int(ncmoe) or None, ubatch=a.ubatch, cache_type_k=a.cache_type,
            cache_type_v=a.cache_type, flash_attn=fa, threads=a.threads, extra_args=("-lv", "4"),  # type: ignore[arg-type]
        )  # fmt: skip
        server = ServerSettings(port=free_port(), ready_timeout_s=300, stop_grace_s=10)
        config = Config(path=None, server=server, profiles={"cal": profile}, default_profile="cal")
        settings = TuneSettings(
            gen_tokens=32, prompt_tokens=a.prompt_tokens, gpu_index=a.gpu, repeats=1
        )
        trial = await measure_trial(config, profile, Candidate(int(ngl), int(ncmoe)), settings)
        buffers = _newest_log_buffers()
        on_gpu = sum(v for k, v in buffers.items() if k.startswith("CUDA0 "))
        peak = trial.peak_vram_bytes
        row = {
            "placement": item,
            "status": trial.status.value,
            "peak_vram_mib": peak / 2**20 if peak else None,
            "llama_buffers_mib": buffers,
            "cuda0_buffers_mib": on_gpu,
            "residual_mib": peak / 2**20 - on_gpu if peak else None,
            "predicted": None
            if pred is None
            else {
                "weights_mib": pred.weights_vram_bytes / 2**20,
                "kv_mib": pred.kv_vram_bytes / 2**20,
                "compute_mib": pred.compute_bytes / 2**20,
                "overhead_mib": pred.overhead_bytes / 2**20,
                "total_mib": pred.vram_bytes / 2**20,
            },
            "gen_tokens_per_s": trial.generation_tokens_per_s,
        }
        print(f"calibrate {item}: {json.dumps(row, default=str)}", flush=True)
        rows.append(row)
    return rows


def _trial_dict(t: Trial) -> dict[str, Any]:
    d = asdict(t)
    d["status"] = t.status.value
    d["candidate"] = t.candidate.label()
    return d


async def main_async(a: argparse.Namespace) -> dict[str, Any]:
    model = Path(a.model)
    layout = read_layout(model)
    free, bw = _free_vram(a.gpu)
    vram = parse_size(a.vram) if a.vram else free
    if vram is None:
        raise SystemExit("no GPU and no --vram")
    req = FitRequest(
        vram_bytes=vram,
        ctx=a.ctx,
        ram_bandwidth_bytes_per_s=measure_ram_bandwidth(),
        vram_bandwidth_bytes_per_s=bw or 1008e9,
        cache_type_k=a.cache_type,
        cache_type_v=a.cache_type,
        ubatch=a.ubatch,
        flash_attn=a.flash_attn == "on",
        margin_bytes=parse_size(a.margin),
    )
    out: dict[str, Any] = {"vram_free_bytes": vram, "request": asdict(req), "options": []}
    if a.calibrate:
        out["calibration"] = await calibrate(a, layout, req)
        if a.calibrate_only:
            return out
    report = advise(layout, req)
    best = report.best
    out["options"] = [asdict(o) | {"vram_bytes": o.vram_bytes} for o in report.options[:10]]
    print(f"free VRAM {vram / 2**30:.2f} GiB; {len(report.options)} of {report.considered} fit")
    if best is None:
        out["error"] = "nothing fits"
        return out
    print(f"advice: {' '.join(best.flags())}, predicted {best.vram_bytes / 2**30:.3f} GiB")
    fa = "on" if req.flash_attn else "off"
    profile = Profile(
        name="fit", model=model, ctx=a.ctx, n_gpu_layers=best.n_gpu_layers,
        n_cpu_moe=best.n_cpu_moe or None, ubatch=a.ubatch, cache_type_k=a.cache_type,
        cache_type_v=a.cache_type, flash_attn=fa, threads=a.threads,  # type: ignore[arg-type]
    )  # fmt: skip
    server = ServerSettings(port=free_port(), ready_timeout_s=300, stop_grace_s=10)
    config = Config(path=None, server=server, profiles={"fit": profile}, default_profile="fit")
    settings = TuneSettings(
        budget_s=a.tune_budget_s, gen_tokens=a.gen_tokens, prompt_tokens=a.prompt_tokens,
        vram_budget_bytes=vram, margin_bytes=req.margin_bytes, gpu_index=a.gpu,
        default_ngl=best.n_gpu_layers, default_ubatch=a.ubatch, repeats=3,
    )  # fmt: skip
    advice = await measure_trial(
        config, profile, Candidate(best.n_gpu_layers, best.n_cpu_moe), settings
    )
    measured = advice.peak_vram_bytes
    err = (best.vram_bytes - measured) / measured if measured else None
    out["advice"] = {
        "flags": best.flags(),
        "predicted_vram_bytes": best.vram_bytes,
        "measured_peak_vram_bytes": measured,
        "relative_error": err,
        "trial": _trial_dict(advice),
        "ok_no_oom": advice.status.value == "ok",
        "within_10pct": err is not None and abs(err) <= 0.10,
    }
    print(f"advice run: {advice.status.value}; measured {measured}; error {err}")

    start = max(layout.block_count + 1 - best.n_gpu_layers, 0)
    cuts = around(max(best.n_cpu_moe, start), start, layout.block_count, a.span)
    t0 = time.monotonic()
    tuned: TuneFinished | None = None
    cands = [Candidate(best.n_gpu_layers, c) for c in cuts]
    async for ev in tune(config, profile, cands, settings):
        if isinstance(ev, TuneFinished):
            tuned = ev
    assert tuned is not None
    out["tune"] = {
        "seconds": time.monotonic() - t0,
        "trials": [_trial_dict(t) for t in tuned.trials],
        "winner": tuned.winner.candidate.label() if tuned.winner else None,
        "winner_tokens_per_s": tuned.winner.generation_tokens_per_s if tuned.winner else None,
    }
    print(f"tune: {out['tune']['winner']} {out['tune']['winner_tokens_per_s']}")

    sweep_cands = [Candidate(best.n_gpu_layers, c) for c in range(layout.block_count + 1)]
    sweep_settings = replace(settings, budget_s=a.sweep_budget_s)
    swept: TuneFinished | None = None
    async for ev in tune(config, profile, sweep_cands, sweep_settings):
        if isinstance(ev, TuneFinished):
            swept = ev
    assert swept is not None
    sweep_best = swept.winner.generation_tokens_per_s if swept.winner else None
    ratio = (
        out["tune"]["winner_tokens_per_s"] / sweep_best
        if sweep_best and out["tune"]["winner_tokens_per_s"]
        else None
    )
    # The fair comparison: the sweep's own measurement of tune's pick against the sweep's best
    # (one series of runs, so run-to-run noise between tune and the sweep does not enter).
    pick = tuned.winner.candidate if tuned.winner else None
    pick_in_sweep = next(
        (t.generation_tokens_per_s for t in swept.trials if t.candidate == pick), None
    )
    same_series = pick_in_sweep / sweep_best if pick_in_sweep and sweep_best else None
    out["sweep"] = {
        "tune_pick_in_sweep_tokens_per_s": pick_in_sweep,
        "tune_pick_over_best_same_series": same_series,
        "trials": [_trial_dict(t) for t in swept.trials],
        "best": swept.winner.candidate.label() if swept.winner else None,
        "best_tokens_per_s": sweep_best,
        "tune_over_sweep": ratio,
        "within_5pct": ratio is not None and ratio >= 0.95,
    }
    print(f"sweep best: {out['sweep']['best']} {sweep_best}; tune/sweep {ratio}")
    return out


def write_md(res: dict[str, Any], path: Path) -> None:
    lines = ["# fit/tune validation", ""]
    adv = res.get("advice", {})
    lines.append(f"- free VRAM: {res['vram_free_bytes'] / 2**30:.2f} GiB")
    if adv:
        lines.append(
            f"- advice `{' '.join(adv['flags'])}`: predicted {adv['predicted_vram_bytes'] / 2**30:.3f} GiB, "
            f"measured {adv['measured_peak_vram_bytes']}, error {adv['relative_error']}, "
            f"no OOM: {adv['ok_no_oom']}, within 10 %: {adv['within_10pct']}"
        )
    for key in ("tune", "sweep"):
        part = res.get(key)
        if not part:
            continue
        lines += [
            "",
            f"## {key}",
            "",
            "| candidate | status | gen t/s | prompt t/s | peak VRAM |",
            "|---|---|---|---|---|",
        ]
        for t in part["trials"]:
            lines.append(
                f"| {t['candidate']} | {t['status']} | {t['generation_tokens_per_s']} | "
                f"{t['prompt_tokens_per_s']} | {t['peak_vram_bytes']} |"
            )
    if "sweep" in res:
        s = res["sweep"]
        lines += [
            "",
            f"tune/sweep best tokens/s: {s['tune_over_sweep']} (within 5 %: {s['within_5pct']})",
            f"sweep's own run of tune's pick / sweep best: {s['tune_pick_over_best_same_series']}",
        ]
    if res.get("calibration"):
        lines += [
            "",
            "## calibration: llama.cpp's CUDA0 buffers and NVML's process VRAM vs the prediction",
            "",
            "| placement ngl:ncmoe:ctx:fa | status | NVML peak MiB | CUDA0 buffers MiB | residual MiB "
            "| buffers (llama.cpp) | predicted total MiB | predicted parts MiB |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in res["calibration"]:
            pred = r["predicted"] or {}
            lines.append(
                f"| {r['placement']} | {r['status']} | {r['peak_vram_mib']} | "
                f"{r['cuda0_buffers_mib']} | {r['residual_mib']} | {r['llama_buffers_mib']} | "
                f"{pred.get('total_mib')} | {pred} |"
            )
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--vram", help="plan for this much VRAM instead of NVML's free (dry run)")
    p.add_argument("--gpu", type=int, default=0)
    p.add_argument("--ctx", type=int, default=32768)
    p.add_argument("--cache-type", default="f16")
    p.add_argument("--flash-attn", default="off", choices=("on", "off"))
    p.add_argument("--ubatch", type=int, default=512)
    p.add_argument("--margin", default="256MiB")
    p.add_argument("--threads", type=int)
    p.add_argument("--span", type=int, default=2)
    p.add_argument("--gen-tokens", type=int, default=128)
    p.add_argument("--prompt-tokens", type=int, default=2048)
    p.add_argument("--tune-budget-s", type=float, default=120)
    p.add_argument("--sweep-budget-s", type=float, default=240)
    p.add_argument(
        "--calibrate",
        help="placements NGL:NCMOE:CTX:FA,... to measure first (llama.cpp's buffers vs ours)",
    )
    p.add_argument("--calibrate-only", action="store_true")
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    res = asyncio.run(main_async(a))
    (out / "fit_validate.json").write_text(json.dumps(res, indent=2, default=str))
    write_md(res, out / "fit_validate.md")


if __name__ == "__main__":
    main()
