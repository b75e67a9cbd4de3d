"""What ``coder-tui fit`` prints: the plan's lines, the ranked table, the speed model and
llama-fit-params' answer beside ours (``cli/fit.py`` gathers the request and calls these).

``size`` is the byte format of the fit and tune tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coder_tui.core.sanitize import sanitize_line
from coder_tui.core.units import format_rate, format_size

if TYPE_CHECKING:
    from coder_tui.core.gguf.memory import ComputeEstimate
    from coder_tui.core.tune.fit import FitReport, FitRequest
    from coder_tui.core.tune.llama_fit import FitParamsAnswer


def size(n: float) -> str:
    """Bytes for the fit and tune tables: ``core.units.format_size`` to two decimals (a plan
    is read to the tens of MiB)."""
    return format_size(n, digits=2)


def gpu_compute_line(req: FitRequest, c: ComputeEstimate) -> str:
    """The CUDA compute buffer per placement kind, and where the figures come from."""
    from coder_tui.core.gguf.memory import PLACEMENT_KINDS

    given = dict(req.gpu_compute_source)
    parts = ", ".join(
        f"{kind.replace('_', ' ')} {size(req.compute_for(c, kind))}" for kind in PLACEMENT_KINDS
    )
    if given and len(given) == len(PLACEMENT_KINDS):
        src = "llama-fit-params' estimates"
    elif given:
        src = f"llama-fit-params' estimates for {', '.join(given)}, the model for the rest"
    else:
        src = "the model: CPU graph + GPU terms measured on an H100, docs/gpu-validation.md"
    return f"CUDA compute buffer by where the RAM experts are: {parts} ({src})"


def report_lines(report: FitReport, top: int, card_src: str, ram_src: str) -> list[str]:
    """The human-readable report (header, table, flags)."""
    req = report.request
    c = report.compute
    experts = f", {report.expert_count} experts" if report.expert_count else ""
    lines = [
        f"model: {sanitize_line(report.model_name)}, {report.n_layer} layers{experts}",
        f"card: {size(req.vram_bytes)} ({card_src}); keep {size(req.margin_bytes)} free; "
        f"CUDA runtime {size(req.overhead_bytes)}",
        f"KV cache {req.cache_type_k}/{req.cache_type_v}: {report.cells.total} cells (ctx "
        f"{req.ctx} padded) in {len(report.kv_layers)} layers = {size(report.kv_bytes_total)}"
        " if all on the GPU",
    ]
    if report.recurrent_layers:
        lines.append(
            f"recurrent state: {len(report.recurrent_layers)} layers x {c.n_outputs} slots = "
            f"{size(report.rs_bytes_total)} if all on the GPU"
        )
    lines += [
        f"compute buffer (ubatch {c.n_ubatch}, {c.n_outputs} outputs): {size(c.total_bytes)} = "
        f"mask {size(c.mask_bytes)} + max(attention {size(c.kq_bytes + c.attn_bytes)}, "
        f"ffn {size(c.ffn_bytes)}, recurrent {size(c.recurrent_bytes)}, "
        f"output {size(c.output_bytes)})",
        gpu_compute_line(req, c),
        f"roofline: RAM {format_rate(req.ram_bandwidth_bytes_per_s)} ({ram_src}), VRAM "
        f"{format_rate(req.vram_bandwidth_bytes_per_s)}; {report.considered} placements, "
        f"{len(report.options)} fit",
        *speed_lines(report),
        *[f"note: {n}" for n in report.notes],
    ]
    if not report.options:
        s = report.smallest
        lines.append(
            f"nothing fits on the card: the smallest placement ({s.label()}) needs "
            f"{size(s.vram_bytes)} + {size(req.margin_bytes)} margin"
        )
        if req.vram_bytes <= req.overhead_bytes + req.margin_bytes:
            lines.append(
                f"  the card's {size(req.vram_bytes)} is less than the CUDA runtime "
                f"({size(req.overhead_bytes)}) plus the margin kept free "
                f"({size(req.margin_bytes)}): no layer can go on it"
            )
        return lines
    calibrated = req.speed is not None
    head = (
        f"{'#':>2}  {'placement':<46} {'VRAM':>10}  {'KV+RS':>10}  {'GPU experts':>11}  "
        f"{'RAM B/tok':>10}  {'ceiling':>8}" + (f"  {'predicted':>9}" if calibrated else "")
    )
    lines += ["", head]
    for i, o in enumerate(report.options[: max(top, 1)], 1):
        tps = f"{o.tokens_per_s:.1f}" if o.tokens_per_s else "-"
        row = (
            f"{i:>2}  {o.label():<46} {size(o.vram_bytes):>10}  "
            f"{size(o.kv_vram_bytes + o.rs_vram_bytes):>10}  {size(o.gpu_expert_bytes):>11}  "
            f"{size(o.ram_bytes_per_token):>10}  {tps:>8}"
        )
        if calibrated:
            row += f"  {o.predicted_tokens_per_s or 0:>9.1f}"
        lines.append(row)
    lines += ["", "flags: " + " ".join(server_flags(req, report.options[0].flags()))]
    return lines


def cpu_only_lines(report: FitReport, model_bytes: int, ram_available: int | None) -> list[str]:
    """The plan without a GPU: everything in RAM (``-ngl 0``), and whether this machine has it."""
    req, c = report.request, report.compute
    need = model_bytes + report.kv_bytes_total + report.rs_bytes_total + c.total_bytes
    verdict = ""
    if ram_available is not None:
        fits = "fits" if need <= ram_available else "does not fit"
        verdict = f"; {size(ram_available)} available here: it {fits}"
    return [
        f"on the CPU alone (no GPU, or -ngl 0): model {size(model_bytes)} + KV "
        f"{size(report.kv_bytes_total + report.rs_bytes_total)} + compute {size(c.total_bytes)} "
        f"= {size(need)} of RAM{verdict}",
        "flags: " + " ".join(server_flags(req, ["-ngl", "0"])),
    ]


def speed_lines(report: FitReport) -> list[str]:
    """What the calibrated speed model rests on and how far off it is from each run."""
    model = report.request.speed
    if model is None:
        return ["speed: the roofline only (a ceiling): no measured run of this model yet"]
    out = [
        f"speed: calibrated on {len(model.points)} measured run(s), fitted "
        f"{', '.join(model.fitted)}: {model.fixed_s * 1e3:.2f} ms fixed + "
        f"{model.per_split_s * 1e3:.3f} ms per CPU/GPU hand-over + RAM at "
        f"{format_rate(model.ram_bandwidth_bytes_per_s)} + VRAM at "
        f"{format_rate(model.vram_bandwidth_bytes_per_s)}"
    ]
    for label, measured, predicted in model.errors():
        off = (predicted - measured) / measured * 100 if measured else 0.0
        out.append(
            f"  run {label}: measured {measured:.1f} t/s, model {predicted:.1f} ({off:+.1f} %)"
        )
    return out


def fit_params_lines(
    answer: FitParamsAnswer, ours: tuple[int, float | None, float | None] | None = None
) -> list[str]:
    """llama-fit-params' answer; ``ours``: our (VRAM, ceiling, prediction) for its placement."""
    if answer.error:
        return [f"llama-fit-params: {answer.error}"]
    lines = [f"llama-fit-params (llama.cpp's own fit, same margin): {answer.fitted_args}"]
    if ours is not None:
        vram, ceiling, predicted = ours
        speed = f"ceiling {ceiling:.1f} t/s" if ceiling else "ceiling -"
        if predicted:
            speed += f", predicted {predicted:.1f} t/s"
        lines.append(f"  ours for that placement: VRAM {size(vram)}, {speed}")
    for e in answer.estimate:
        lines.append(
            f"llama-fit-params estimate for our pick on {e.device}: model "
            f"{size(e.model_mib << 20)}, context {size(e.context_mib << 20)}, compute "
            f"{size(e.compute_mib << 20)} (it reserves one output per token of -ub, "
            "llama-server one per slot)"
        )
    return lines


def server_flags(req: FitRequest, placement: list[str]) -> list[str]:
    """The llama-server flags to paste for a placement."""
    out = ["-c", str(req.ctx), *placement, "-ub", str(req.ubatch)]
    if req.ubatch > req.batch or req.batch != 2048:
        out += ["-b", str(max(req.batch, req.ubatch))]
    out += ["--cache-type-k", req.cache_type_k, "--cache-type-v", req.cache_type_v]
    out += ["--flash-attn", "on" if req.flash_attn else "off"]
    return out + (["--parallel", str(req.parallel)] if req.parallel else [])
