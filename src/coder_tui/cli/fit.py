"""``coder-tui fit MODEL``: which placements fit a card, fastest first (printed by ``cli/fit_report.py``).

Parses the arguments, reads the model (a file, a split model's parts, or an ``https://`` URL whose
header alone is fetched with range requests), finds the card's VRAM (``--vram``, else NVML's free
memory of ``--gpu``), calibrates the speed model on this machine's measured runs of the model,
calls ``core.tune.fit.advise`` and prints the ranked table, the flags to paste and
llama-fit-params' own choice with our prediction of its VRAM and speed beside ours;
``--write-profile NAME`` saves the best placement to the state file. The predictions are
``core/tune/fit.py``'s and ``core/gguf/memory.py``'s.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coder_tui.cli.fit_report import (
    cpu_only_lines,
    fit_params_lines,
    report_lines,
    size,
)
from coder_tui.core.sanitize import sanitize_line

if TYPE_CHECKING:
    from coder_tui.core.gguf.layout import GgufLayout
    from coder_tui.core.tune.fit import FitRequest
    from coder_tui.core.tune.speed import SpeedModel


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``fit`` subcommand."""
    p = subparsers.add_parser(
        "fit",
        parents=[common],
        help="rank the -ngl/--n-cpu-moe pairs that fit a GPU by predicted speed",
        description="Predict VRAM and decode speed of every -ngl/--n-cpu-moe pair for MODEL.",
    )
    p.add_argument("model", metavar="MODEL", help="GGUF model file (or https:// URL, header only)")
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
    p.add_argument(
        "--threads", type=int, metavar="N", help="server threads, -t (RAM bandwidth is measured so)"
    )
    p.add_argument("--mtp", action="store_true", help="plan for draft-MTP (loads the MTP block)")
    p.add_argument(
        "--measured",
        action="append",
        default=[],
        metavar="FLAGS=T/S",
        help='a measured decode speed to calibrate on, e.g. "-ngl 49 --n-cpu-moe 8=79.6"',
    )
    p.add_argument(
        "--no-calibration", action="store_true", help="rank by the roofline only (no stored runs)"
    )


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
    from coder_tui.core.paths import app_paths
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
    from coder_tui.core.tune.measured import ram_bandwidth

    if args.ram_bw:
        ram_bw, ram_src = parse_rate(args.ram_bw, what="--ram-bw"), "--ram-bw"
    else:
        threads = getattr(args, "threads", None) or d.get("threads")
        bw = ram_bandwidth(threads if threads and threads > 0 else None, app_paths().cache_dir)
        ram_bw, ram_src = bw.bytes_per_s, bw.label
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
        mtp=bool(getattr(args, "mtp", False)),
    )
    return req, ram_src


def ram_available_bytes() -> int | None:
    """This machine's available RAM (``None`` where psutil cannot tell)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # a probe never fails the command
        return None


def calibration(
    args: argparse.Namespace, layout: GgufLayout, model: Path | None, req: FitRequest
) -> SpeedModel | None:
    """The speed model from ``--measured`` and this model's stored runs (``None``: none)."""
    from coder_tui.core.errors import UserError
    from coder_tui.core.paths import app_paths
    from coder_tui.core.tune.measured import load_runs, traffic_for_args
    from coder_tui.core.tune.speed import Measured, calibrate

    if args.no_calibration:
        return None
    points = load_runs(app_paths().state_dir, model, layout) if model is not None else []
    for item in args.measured:
        flags, _, tps = item.rpartition("=")
        try:
            value = float(tps)
        except ValueError:
            raise UserError(f'--measured: expected "FLAGS=T/S", got {item!r}') from None
        argv = shlex.split(flags)
        points.append(Measured(flags, traffic_for_args(layout, argv), value, "--measured"))
    if not points:
        return None
    return calibrate(
        points,
        ram_copy_bandwidth=req.ram_bandwidth_bytes_per_s,
        vram_bandwidth=req.vram_bandwidth_bytes_per_s,
    )


def run(args: argparse.Namespace) -> int:
    """Run ``coder-tui fit``."""
    import dataclasses

    from coder_tui.core.errors import UserError
    from coder_tui.core.gguf.layout import read_layout
    from coder_tui.core.gguf.remote import is_url, read_remote_layout
    from coder_tui.core.paths import app_paths
    from coder_tui.core.server.binary import BinaryNotFound, find_tool
    from coder_tui.core.tune.fit import advise
    from coder_tui.core.tune.llama_fit import (
        compute_by_kind,
        fitted_placement,
        profile_table,
        run_fit_params,
        save_state_profile,
    )
    from coder_tui.core.tune.measured import traffic_for_args, vram_for_args
    from coder_tui.core.tune.speed import roofline_tokens_per_s

    model: Path | None = None
    if is_url(args.model) and args.write_profile:
        raise UserError("download the model first: a profile needs a local file")
    if is_url(args.model):
        remote = read_remote_layout(args.model)
        layout = remote.layout
        print(
            f"read {len(remote.urls)} header(s) over HTTP: {size(remote.fetched_bytes)} of "
            f"{size(remote.total_bytes)}"
        )
    else:
        model = Path(args.model).expanduser()
        layout = read_layout(model)
    try:
        vram, vram_bw, card_src = find_card(args.vram, args.gpu)
    except UserError as exc:
        if args.gpu is not None or args.write_profile:
            raise
        # No GPU and no --vram: what the model needs on the CPU alone, and how to plan a card.
        req, _ = build_request(args, 1, None, layout.context_length or 4096)  # a 1-byte card
        report = advise(layout, req)
        print(f"model: {sanitize_line(report.model_name)}, {report.n_layer} layers")
        print(f"{exc}; meanwhile:")
        for line in cpu_only_lines(report, layout.tensor_bytes, ram_available_bytes()):
            print(line)
        return 0
    req, ram_src = build_request(args, vram, vram_bw, layout.context_length or 4096)
    req = dataclasses.replace(req, speed=calibration(args, layout, model, req))
    tool: Path | None = None
    if not args.no_fit_params and model is not None:
        try:
            tool = find_tool("llama-fit-params")
        except BinaryNotFound:
            print("llama-fit-params: not installed")
    if tool is not None and model is not None:  # its CUDA compute estimate beats the model's
        source = compute_by_kind(tool, model, req, layout.n_layer_trunk)
        req = dataclasses.replace(req, gpu_compute_source=source)
    report = advise(layout, req)
    for line in report_lines(report, args.top, card_src, ram_src):
        print(line)
    if not report.options:  # the card holds nothing: say what the CPU alone would need
        for line in cpu_only_lines(report, layout.tensor_bytes, ram_available_bytes()):
            print(line)
    if tool is not None and model is not None:
        answer = run_fit_params(tool, model, req, report.best)
        theirs = fitted_placement(answer)
        ours = None
        if theirs:
            t = traffic_for_args(layout, theirs)
            ceiling = roofline_tokens_per_s(
                t, req.ram_bandwidth_bytes_per_s, req.vram_bandwidth_bytes_per_s
            )
            predicted = req.speed.tokens_per_s(t) if req.speed else None
            ours = (vram_for_args(layout, req, theirs), ceiling, predicted)
        for line in fit_params_lines(answer, ours):
            print(line)
    if args.write_profile and model is not None:
        if report.best is None:
            raise UserError("nothing fits, so no profile was written")
        state = app_paths().state_file
        save_state_profile(state, args.write_profile, profile_table(model, req, report.best))
        print(f"added [profiles.{args.write_profile}] to {state}")
    return 0 if report.options else 1
