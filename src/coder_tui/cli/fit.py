"""``coder-tui fit MODEL``: which ``-ngl`` / ``--n-cpu-moe`` pairs fit a card, fastest first.

Parses the arguments, finds the card's VRAM (``--vram``, else NVML's free memory of ``--gpu``),
calls ``core.fit.advise`` and prints the ranked table, the flags to paste and llama-fit-params'
answer beside ours; ``--write-profile NAME`` saves the best pair to the state file. The
predictions are ``core/fit.py``'s and ``core/kv.py``'s.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from coder_tui.core.tune.fit import FitReport, FitRequest
    from coder_tui.core.tune.llama_fit import FitParamsAnswer


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``fit`` subcommand."""
    p = subparsers.add_parser(
        "fit",
        parents=[common],
        help="rank the -ngl/--n-cpu-moe pairs that fit a GPU by predicted speed",
        description="Predict VRAM and decode speed of every -ngl/--n-cpu-moe pair for MODEL.",
    )
    p.add_argument("model", metavar="MODEL", help="GGUF model file")
    card = p.add_mutually_exclusive_group()
    card.add_argument("--vram", metavar="SIZE", help="plan for a card of SIZE (e.g. 24GiB)")
    card.add_argument("--gpu", type=int, metavar="N", help="use GPU N's free VRAM (default 0)")
    add_request_args(p)
    p.add_argument("--top", type=int, default=5, metavar="N", help="rows to show (default 5)")
    p.add_argument("--write-profile", metavar="NAME", help="save the best pair to the state file")
    p.add_argument(
        "--no-fit-params", action="store_true", help="do not run llama-fit-params for comparison"
    )
    p.set_defaults(func=run)


def add_request_args(p: argparse.ArgumentParser) -> None:
    """The options that describe how the server will run (shared with ``tune``)."""
    p.add_argument("--ctx", type=int, metavar="N", help="context size (default: the model's)")
    p.add_argument("--cache-type", metavar="TYPE", help="KV cache type for K and V (e.g. q4_0)")
    p.add_argument("--cache-type-k", metavar="TYPE", help="KV cache type for K")
    p.add_argument("--cache-type-v", metavar="TYPE", help="KV cache type for V")
    p.add_argument("--ubatch", type=int, metavar="N", help="physical batch size (default 512)")
    p.add_argument("--batch", type=int, metavar="N", help="logical batch size (default 2048)")
    p.add_argument("--parallel", type=int, metavar="N", help="slots, -np (default: server's)")
    p.add_argument("--flash-attn", choices=("on", "off"), help="flash attention (default on)")
    p.add_argument("--margin", default="0.5GiB", metavar="SIZE", help="VRAM kept free")
    p.add_argument(
        "--overhead", metavar="SIZE", help="CUDA context, kernels, cuBLAS (default 736MiB)"
    )
    p.add_argument("--ram-bw", metavar="RATE", help="RAM bandwidth, e.g. 50GB/s (else measured)")
    p.add_argument("--vram-bw", metavar="RATE", help="VRAM bandwidth (else NVML, else 1008GB/s)")
    p.add_argument("--depth", type=int, default=0, metavar="N", help="tokens in context at decode")


def gib(n: float) -> str:
    """Bytes as GiB or MiB, for tables."""
    return f"{n / (1 << 30):.2f} GiB" if abs(n) >= 1 << 30 else f"{n / (1 << 20):.1f} MiB"


def find_card(vram: str | None, gpu: int | None) -> tuple[int, float | None, str]:
    """(VRAM bytes, VRAM bandwidth or None, where that came from); ``UserError`` without a GPU."""
    from coder_tui.core.errors import UserError
    from coder_tui.core.metrics.gpu import GpuProbe
    from coder_tui.core.tune.fit import parse_size

    if vram is not None:
        return parse_size(vram, what="--vram"), None, "--vram"
    probe = GpuProbe()
    try:
        snap = probe.sample()
    finally:
        probe.close()
    index = gpu or 0
    devices = [d for d in snap.devices if d.index == index and not d.lost]
    if not snap.available or not devices or devices[0].vram_free_bytes is None:
        why = snap.reason or f"GPU {index} not found"
        raise UserError(f"{why}: pass --vram SIZE (e.g. --vram 24GiB) to plan for a card")
    dev = devices[0]
    assert dev.vram_free_bytes is not None
    return dev.vram_free_bytes, dev.vram_bandwidth_bytes_per_s, f"GPU {index} free ({dev.name})"


def build_request(
    args: argparse.Namespace,
    vram_bytes: int,
    vram_bw: float | None,
    ctx_default: int,
    defaults: dict[str, Any] | None = None,
) -> tuple[FitRequest, str]:
    """A ``FitRequest`` from the shared options (``defaults``: a profile's values), and how the
    RAM bandwidth was found."""
    from coder_tui.core.metrics.moe import measure_ram_bandwidth
    from coder_tui.core.tune.fit import (
        DEFAULT_OVERHEAD,
        DEFAULT_VRAM_BW,
        FitRequest,
        parse_rate,
        parse_size,
    )

    d = defaults or {}
    ct_k = args.cache_type_k or args.cache_type or d.get("cache_type_k") or "f16"
    ct_v = args.cache_type_v or args.cache_type or d.get("cache_type_v") or "f16"
    if args.ram_bw:
        ram_bw, ram_src = parse_rate(args.ram_bw, what="--ram-bw"), "--ram-bw"
    else:
        ram_bw, ram_src = measure_ram_bandwidth(), "measured, 1 thread"
    fa = args.flash_attn or d.get("flash_attn") or "on"
    req = FitRequest(
        vram_bytes=vram_bytes,
        ctx=args.ctx or d.get("ctx") or ctx_default,
        ram_bandwidth_bytes_per_s=ram_bw,
        vram_bandwidth_bytes_per_s=(
            parse_rate(args.vram_bw, what="--vram-bw") if args.vram_bw else vram_bw
        )
        or DEFAULT_VRAM_BW,
        cache_type_k=ct_k,
        cache_type_v=ct_v,
        ubatch=args.ubatch or d.get("ubatch") or 512,
        batch=args.batch or d.get("batch") or 2048,
        parallel=args.parallel,
        flash_attn=fa != "off",
        margin_bytes=parse_size(args.margin, what="--margin"),
        overhead_bytes=(
            parse_size(args.overhead, what="--overhead") if args.overhead else DEFAULT_OVERHEAD
        ),
        depth=max(args.depth, 0),
    )
    return req, ram_src


def report_lines(report: FitReport, top: int, card_src: str, ram_src: str) -> list[str]:
    """The human-readable report (header, table, flags)."""
    req = report.request
    kv_total = report.kv_bytes_per_cell * len(report.kv_layers) * report.cells.total
    c = report.compute
    experts = f", {report.expert_count} experts" if report.expert_count else ""
    lines = [
        f"model: {report.model_name}, {report.n_layer} layers{experts}",
        f"card: {gib(req.vram_bytes)} ({card_src}); keep {gib(req.margin_bytes)} free; "
        f"CUDA context {gib(req.overhead_bytes)}",
        f"KV cache {req.cache_type_k}/{req.cache_type_v}: {report.cells.total} cells (ctx "
        f"{req.ctx} padded) x {report.kv_bytes_per_cell} B x {len(report.kv_layers)} layers "
        f"= {gib(kv_total)} if all on the GPU",
        f"compute buffer (estimate, ubatch {c.n_ubatch}): {gib(c.total_bytes)} = mask "
        f"{gib(c.mask_bytes)} + scores {gib(c.kq_bytes)} + max(ffn {gib(c.ffn_bytes)}, "
        f"output {gib(c.output_bytes)})",
        f"roofline: RAM {req.ram_bandwidth_bytes_per_s / 1e9:.1f} GB/s ({ram_src}), VRAM "
        f"{req.vram_bandwidth_bytes_per_s / 1e9:.0f} GB/s; {report.considered} placements, "
        f"{len(report.options)} fit",
        *[f"note: {n}" for n in report.notes],
    ]
    if not report.options:
        s = report.smallest
        lines.append(
            f"nothing fits: the smallest placement ({' '.join(s.flags())}) needs "
            f"{gib(s.vram_bytes)} + {gib(req.margin_bytes)} margin"
        )
        return lines
    head = (
        f"{'#':>2}  {'-ngl':>4} {'n-cpu-moe':>9}  {'VRAM':>10}  {'weights':>10}  {'KV':>10}  "
        f"{'GPU experts':>11}  {'RAM B/tok':>10}  {'t/s ceiling':>11}"
    )
    lines += ["", head]
    for i, o in enumerate(report.options[: max(top, 1)], 1):
        tps = f"{o.tokens_per_s:.1f}" if o.tokens_per_s else "-"
        lines.append(
            f"{i:>2}  {o.n_gpu_layers:>4} {o.n_cpu_moe:>9}  {gib(o.vram_bytes):>10}  "
            f"{gib(o.weights_vram_bytes):>10}  {gib(o.kv_vram_bytes):>10}  "
            f"{gib(o.gpu_expert_bytes):>11}  {gib(o.ram_bytes_per_token):>10}  {tps:>11}"
        )
    lines += ["", "flags: " + " ".join(server_flags(req, report.options[0].flags()))]
    return lines


def server_flags(req: FitRequest, placement: list[str]) -> list[str]:
    """The llama-server flags to paste for a placement."""
    out = ["-c", str(req.ctx), *placement, "-ub", str(req.ubatch)]
    if req.ubatch > req.batch or req.batch != 2048:
        out += ["-b", str(max(req.batch, req.ubatch))]
    out += ["--cache-type-k", req.cache_type_k, "--cache-type-v", req.cache_type_v]
    out += ["--flash-attn", "on" if req.flash_attn else "off"]
    return out + (["--parallel", str(req.parallel)] if req.parallel else [])


def fit_params_lines(answer: FitParamsAnswer) -> list[str]:
    """llama-fit-params' answer, one or two lines."""
    if answer.error:
        return [f"llama-fit-params: {answer.error}"]
    lines = [f"llama-fit-params (for this machine's free memory): {answer.fitted_args}"]
    for e in answer.estimate:
        lines.append(
            f"llama-fit-params estimate for our pick on {e.device}: model {e.model_mib} MiB, "
            f"context {e.context_mib} MiB, compute {e.compute_mib} MiB"
        )
    return lines


def run(args: argparse.Namespace) -> int:
    """Run ``coder-tui fit``."""
    from coder_tui.core.errors import UserError
    from coder_tui.core.gguf.layout import read_layout
    from coder_tui.core.paths import app_paths
    from coder_tui.core.server.binary import BinaryNotFound, find_tool
    from coder_tui.core.tune.fit import advise
    from coder_tui.core.tune.llama_fit import profile_table, run_fit_params, save_state_profile

    model = Path(args.model).expanduser()
    layout = read_layout(model)
    vram, vram_bw, card_src = find_card(args.vram, args.gpu)
    req, ram_src = build_request(args, vram, vram_bw, layout.context_length or 4096)
    report = advise(layout, req)
    for line in report_lines(report, args.top, card_src, ram_src):
        print(line)
    if not args.no_fit_params:
        try:
            tool = find_tool("llama-fit-params")
        except BinaryNotFound:
            print("llama-fit-params: not installed")
        else:
            for line in fit_params_lines(run_fit_params(tool, model, req, report.best)):
                print(line)
    if args.write_profile:
        if report.best is None:
            raise UserError("nothing fits, so no profile was written")
        state = app_paths().state_file
        save_state_profile(state, args.write_profile, profile_table(model, req, report.best))
        print(f"added [profiles.{args.write_profile}] to {state}")
    return 0 if report.options else 1
