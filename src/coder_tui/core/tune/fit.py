"""The fit advisor: every ``-ngl`` / ``--n-cpu-moe`` pair, its VRAM, its decode roofline, ranked.

Owns ``FitRequest`` (the card, context, cache types, batch sizes, margin), ``advise`` (enumerate
the distinct placements, predict each one's VRAM and speed, keep those that fit, fastest first) and
``parse_size``. The KV cache and compute buffer are ``kv.py``'s; llama.cpp's placement rules
(``-ngl N`` counts the output layer first, ``--n-cpu-moe N`` keeps the experts of layers ``< N`` in
RAM) are ``metrics/moe.py``'s, whose docstring cites the source; this module applies the same rules
layer by layer instead of tensor by tensor (``placement`` per pair would take minutes for a
48-layer model; ``tests/core/test_fit.py`` checks both agree). Running ``llama-fit-params`` and
writing profiles are ``fit_tools.py``'s.

Predicted VRAM of a pair = weights on the GPU (every tensor of the GPU layers except the experts
of layers below ``--n-cpu-moe``, plus ``output.weight`` and ``output_norm`` when ``-ngl >= 1``;
the token embedding stays in RAM) + the KV cache of the GPU layers + the compute buffer + the CUDA
runtime's own context (``overhead_bytes``). It fits when that plus ``margin_bytes`` is at most the
card's VRAM.

Predicted decode speed is the roofline ``1 / (ram_bytes / ram_bw + vram_bytes / vram_bw)`` over
the weight bytes read per token (``metrics/moe.py`` ``token_traffic``: all non-expert weights,
``expert_used`` experts per layer, the output matrix, one embedding row) plus, at ``depth`` tokens
already in the context, the KV cache read by attention. It is a ceiling: real speeds are lower,
mostly on the RAM side, but the ranking between pairs is what the advisor is for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from coder_tui.core.errors import UserError
from coder_tui.core.gguf.layout import GgufLayout, tensor_kind
from coder_tui.core.gguf.memory import (
    ComputeEstimate,
    KvCells,
    compute_buffer,
    kv_bytes_per_cell,
    kv_cells,
    kv_layers,
)

GIB = 1 << 30
MIB = 1 << 20
DEFAULT_VRAM_BW = 1008e9
"""An RTX 4090's VRAM bandwidth (the seed's card), used when NVML cannot say."""
DEFAULT_OVERHEAD = 736 * MIB
"""What a llama-server process holds on the card beyond llama.cpp's own buffers: the CUDA context,
loaded kernels, cuBLAS handles and workspace, ggml's memory pool. Measured on an H200 (driver 580,
CUDA 12, llama.cpp b11434) as NVML's process VRAM minus the model, KV and compute buffers the
server logs: 723-731 MiB over five placements (docs/gpu-validation.md). Driver-dependent; a card
with fewer SMs or an older driver needs less, so this errs on the safe side (``--overhead``)."""

_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?)(b?)\s*$", re.IGNORECASE)


def parse_size(text: str, *, what: str = "size") -> int:
    """``24GiB``, ``0.5GiB``, ``512MiB``, ``24G`` (binary) or ``24GB`` (decimal) in bytes."""
    m = _SIZE_RE.match(text)
    if not m or (m.group(3) and not m.group(2)):
        raise UserError(f"{what}: cannot read {text!r}; write e.g. 24GiB, 512MiB or 24GB")
    number, unit, binary, byte = m.groups()
    power = " kmgt".index(unit.lower()) if unit else 0
    base = 1000 if (byte and not binary and unit) else 1024
    return int(float(number) * base**power)


def parse_rate(text: str, *, what: str = "bandwidth") -> float:
    """A bandwidth such as ``1008GB/s`` or ``50GB`` (decimal units unless ``GiB``) in bytes/s."""
    cleaned = text.strip().removesuffix("/s").removesuffix("/S")
    if cleaned.replace(".", "", 1).isdigit():
        return float(cleaned)
    return float(parse_size(cleaned if cleaned[-1:].lower() == "b" else cleaned + "B", what=what))


@dataclass(frozen=True)
class FitRequest:
    """What to fit: the card and how the server will run. Sizes in bytes, bandwidths in bytes/s."""

    vram_bytes: int
    ctx: int
    ram_bandwidth_bytes_per_s: float
    vram_bandwidth_bytes_per_s: float = DEFAULT_VRAM_BW
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    ubatch: int = 512
    batch: int = 2048
    parallel: int | None = None
    """``-np``; ``None`` is llama-server's auto (4 slots sharing one unified cache)."""
    flash_attn: bool = True
    margin_bytes: int = GIB // 2
    overhead_bytes: int = DEFAULT_OVERHEAD
    depth: int = 0
    """Tokens already in the context while decoding (their KV is read for every new token)."""


@dataclass(frozen=True)
class FitOption:
    """One distinct placement and what it is predicted to cost and give."""

    n_gpu_layers: int
    n_cpu_moe: int
    gpu_layer_count: int
    """Repeating layers on the GPU (their attention, norms, router and KV at least)."""
    output_on_gpu: bool
    weights_vram_bytes: int
    kv_vram_bytes: int
    compute_bytes: int
    overhead_bytes: int
    weights_ram_bytes: int
    kv_ram_bytes: int
    gpu_expert_bytes: int
    ram_bytes_per_token: int
    vram_bytes_per_token: int
    tokens_per_s: float | None
    fits: bool

    @property
    def vram_bytes(self) -> int:
        """Predicted VRAM of the server process."""
        return (
            self.weights_vram_bytes + self.kv_vram_bytes + self.compute_bytes + self.overhead_bytes
        )

    def flags(self) -> list[str]:
        """The llama-server flags for this placement."""
        out = ["-ngl", str(self.n_gpu_layers)]
        return [*out, "--n-cpu-moe", str(self.n_cpu_moe)] if self.n_cpu_moe else out


@dataclass(frozen=True)
class FitReport:
    """``advise``'s answer: the ranked options that fit and what went into them."""

    request: FitRequest
    model_name: str
    n_layer: int
    expert_count: int | None
    cells: KvCells
    kv_bytes_per_cell: int
    """K + V bytes per token of one attention layer."""
    kv_layers: tuple[int, ...]
    compute: ComputeEstimate
    options: tuple[FitOption, ...]
    """The options that fit, fastest first (then the one with the most VRAM to spare)."""
    considered: int
    smallest: FitOption
    """The option needing the least VRAM (shown when nothing fits)."""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def best(self) -> FitOption | None:
        return self.options[0] if self.options else None


@dataclass(frozen=True)
class _Layer:
    non_expert: int
    experts: int
    non_expert_token: int
    expert_token: int
    kv_cell: int


def _layers(layout: GgufLayout, kv_cell: int, kv_idx: set[int]) -> list[_Layer]:
    """Per-layer bytes: stored, and read per token (``token_traffic``'s rule, tensor by tensor)."""
    expert_count = layout.expert_count or 0
    used = layout.expert_used_count or 0
    out = []
    for layer in layout.layers:
        expert_token = 0
        for t in layer.tensors:
            if expert_count and tensor_kind(t.name.split(".", 2)[2]) == "experts":
                expert_token += used * (t.n_bytes // expert_count)
        out.append(
            _Layer(
                non_expert=layer.non_expert_bytes,
                experts=layer.expert_bytes,
                non_expert_token=layer.non_expert_bytes,
                expert_token=expert_token if expert_count else layer.expert_bytes,
                kv_cell=kv_cell if layer.index in kv_idx else 0,
            )
        )
    return out


def _outside_layers(layout: GgufLayout) -> tuple[int, int, int, int]:
    """(output bytes stored, output bytes read per token, RAM bytes stored, RAM bytes per token)."""
    output = layout.output_bytes + layout.output_norm_bytes
    ram_stored = ram_token = 0
    for t in layout.tensors:
        if t.name.startswith(("blk.", "output.", "output_norm.")):
            continue
        ram_stored += t.n_bytes
        if t.name == "token_embd.weight":
            ram_token += t.n_bytes // max(t.shape[-1] if t.shape else 1, 1)  # one row
        else:
            ram_token += t.n_bytes
    return output, output, ram_stored, ram_token


def advise(layout: GgufLayout, req: FitRequest) -> FitReport:
    """Every distinct ``-ngl``/``--n-cpu-moe`` placement of ``layout``, ranked for ``req``."""
    if req.vram_bytes <= 0:
        raise UserError("VRAM must be positive")
    n_layer = layout.block_count
    cells = kv_cells(req.ctx, req.parallel)
    per_cell = kv_bytes_per_cell(layout, req.cache_type_k, req.cache_type_v)
    kv_idx = kv_layers(layout)
    compute = compute_buffer(
        layout, cells, req.ubatch, n_batch=req.batch, flash_attn=req.flash_attn
    )
    layers = _layers(layout, per_cell, set(kv_idx))
    out_stored, out_token, embd_stored, embd_token = _outside_layers(layout)
    has_experts = bool(layout.expert_count) and any(x.experts for x in layers)
    options: list[FitOption] = []
    for ngl in range(n_layer + 1, -1, -1):
        start = min(max(n_layer + 1 - ngl, 0), n_layer)
        cuts = range(start, n_layer + 1) if has_experts else range(start, start + 1)
        for cut in cuts:
            options.append(
                _option(
                    req, layers, ngl, start, cut, cells, compute,
                    (out_stored, out_token, embd_stored, embd_token),
                )
            )  # fmt: skip
    fitting = sorted(
        (o for o in options if o.fits),
        key=lambda o: (-(o.tokens_per_s or 0.0), o.vram_bytes, -o.n_gpu_layers),
    )
    notes = []
    if len(kv_idx) < n_layer:
        notes.append(f"hybrid model: KV cache in {len(kv_idx)} of {n_layer} layers")
    if req.cache_type_v not in ("f16", "f32", "bf16") and not req.flash_attn:
        notes.append("a quantized V cache needs flash attention (--flash-attn on)")
    return FitReport(
        request=req,
        model_name=layout.name or layout.path.name,
        n_layer=n_layer,
        expert_count=layout.expert_count,
        cells=cells,
        kv_bytes_per_cell=per_cell,
        kv_layers=kv_idx,
        compute=compute,
        options=tuple(fitting),
        considered=len(options),
        smallest=min(options, key=lambda o: o.vram_bytes),
        notes=tuple(notes),
    )


def _option(
    req: FitRequest,
    layers: list[_Layer],
    ngl: int,
    start: int,
    cut: int,
    cells: KvCells,
    compute: ComputeEstimate,
    outside: tuple[int, int, int, int],
) -> FitOption:
    out_stored, out_token, embd_stored, embd_token = outside
    w_vram = w_ram = kv_vram = kv_ram = gpu_experts = 0
    tok_vram = tok_ram = 0
    for i, layer in enumerate(layers):
        kv = layer.kv_cell * cells.total
        kv_read = layer.kv_cell * min(req.depth, cells.total)
        if i >= start:
            w_vram += layer.non_expert
            tok_vram += layer.non_expert_token + kv_read
            kv_vram += kv
            if i >= cut:
                w_vram += layer.experts
                gpu_experts += layer.experts
                tok_vram += layer.expert_token
            else:
                w_ram += layer.experts
                tok_ram += layer.expert_token
        else:
            w_ram += layer.non_expert + layer.experts
            tok_ram += layer.non_expert_token + layer.expert_token + kv_read
            kv_ram += kv
    output_on_gpu = ngl >= 1
    if output_on_gpu:
        w_vram += out_stored
        tok_vram += out_token
    else:
        w_ram += out_stored
        tok_ram += out_token
    w_ram += embd_stored
    tok_ram += embd_token
    seconds = tok_ram / req.ram_bandwidth_bytes_per_s + tok_vram / req.vram_bandwidth_bytes_per_s
    vram = w_vram + kv_vram + compute.total_bytes + req.overhead_bytes
    return FitOption(
        n_gpu_layers=ngl,
        n_cpu_moe=cut if cut > start else 0,
        gpu_layer_count=len(layers) - start,
        output_on_gpu=output_on_gpu,
        weights_vram_bytes=w_vram,
        kv_vram_bytes=kv_vram,
        compute_bytes=compute.total_bytes,
        overhead_bytes=req.overhead_bytes,
        weights_ram_bytes=w_ram,
        kv_ram_bytes=kv_ram,
        gpu_expert_bytes=gpu_experts,
        ram_bytes_per_token=tok_ram,
        vram_bytes_per_token=tok_vram,
        tokens_per_s=1.0 / seconds if seconds > 0 else None,
        fits=vram + req.margin_bytes <= req.vram_bytes,
    )
