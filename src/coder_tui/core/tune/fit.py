"""The fit advisor: every placement of a model on a card, its VRAM and decode speed, ranked.

Owns ``FitRequest`` (the card, context, cache types, batch sizes, slots, margin, speed model),
``advise`` (enumerate the distinct placements, predict each one's VRAM and speed, keep those that
fit, fastest first) and ``parse_size``/``parse_rate``. Placements are ``-ngl N --n-cpu-moe K``
pairs and, as fine as llama.cpp's own ``--fit``, the same with part of layer K's experts kept on
the GPU by ``-ot`` rules (``blk\\.K\\.ffn_down_exps=CPU``: its gate and up on the GPU, its down
in RAM), and the experts of the LAST layers in RAM instead of the first (``-ot`` rules, as
llama.cpp's fit places them), whose CUDA compute buffer is smaller (``gguf/memory.py``
``gpu_compute_bytes``). The KV cache, recurrent state and compute buffer are
``gguf/memory.py``'s; which settings llama.cpp refuses is ``valid.py``'s; the speed model is
``speed.py``'s; llama.cpp's placement rules (``-ngl N`` counts the output layer first,
``--n-cpu-moe N`` keeps the experts of layers ``< N`` in RAM) are ``metrics/moe.py``'s, whose
docstring cites the source: this module applies the same rules layer by layer
(``tests/core/test_fit.py`` checks both agree). Running ``llama-fit-params`` and writing profiles
are ``llama_fit.py``'s.

Predicted VRAM of a placement = weights on the GPU (every tensor of the GPU layers but the experts
kept in RAM, plus ``output.weight`` and ``output_norm`` when ``-ngl >= 1``; the token embedding
stays in RAM; an MTP block's tensors are not loaded unless ``mtp``) + the KV cache and recurrent
state of the GPU layers + the CUDA compute buffer (``gpu_compute_bytes``, or llama-fit-params'
estimate per placement kind in ``gpu_compute_source``) + what the CUDA runtime holds besides
(``overhead_bytes``, measured as NVML's peak process VRAM after generating minus llama.cpp's
buffers). It fits when that plus ``margin_bytes`` is at most the card's VRAM.

Predicted decode speed: the roofline over the weight bytes read per token (all non-expert
weights, ``expert_used`` experts per layer, the output matrix, one embedding row, and at ``depth``
tokens the KV read by attention) and, with a ``speed`` model calibrated on measured runs, the
calibrated prediction, which then ranks the options.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from coder_tui.core.config.cmdline import flag_args
from coder_tui.core.errors import UserError
from coder_tui.core.gguf.layout import GgufLayout
from coder_tui.core.gguf.memory import (
    ComputeEstimate,
    KvCells,
    compute_buffer,
    gpu_compute_bytes,
    kv_bytes_per_cell,
    kv_cells,
    kv_layers,
    rs_layer_bytes,
    slots,
)
from coder_tui.core.tune.layer_bytes import LayerBytes, layer_bytes, outside_layers
from coder_tui.core.tune.speed import SpeedModel, Traffic, roofline_tokens_per_s
from coder_tui.core.tune.valid import problems

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
PARTIAL_SETS: tuple[tuple[str, ...], ...] = (("down",), ("gate",), ("gate", "down"), ("gate", "up"))
"""Expert matrices of the boundary layer that a partial placement keeps in RAM."""

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
    mtp: bool = False
    """Draft-MTP speculative decoding: the MTP block is loaded and recurrent state keeps
    ``draft_max`` rollback snapshots."""
    draft_max: int = 3
    swa_full: bool = False
    speed: SpeedModel | None = None
    """Calibrated on measured runs: ranks the options by its prediction instead of the roofline."""
    partial_layers: bool = True
    """Also offer placements that keep part of one layer's experts on the GPU (``-ot``)."""
    tail_layers: bool = True
    """Also offer placements that keep the experts of the last layers in RAM (``-ot``)."""
    gpu_compute_source: tuple[tuple[str, int], ...] = ()
    """(placement kind, CUDA compute bytes) from ``llama-fit-params``; empty: the model."""

    def compute_for(self, compute: ComputeEstimate, kind: str, *, op_offload: bool = True) -> int:
        """The CUDA compute buffer of a placement of ``kind`` (``gguf/memory.py``)."""
        given = dict(self.gpu_compute_source)
        if kind in given:
            return given[kind]
        return gpu_compute_bytes(compute, kind, op_offload=op_offload)


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
    """The roofline (a ceiling)."""
    fits: bool
    rs_vram_bytes: int = 0
    rs_ram_bytes: int = 0
    cpu_parts: tuple[str, ...] = ()
    """Expert matrices of layer ``n_cpu_moe`` also kept in RAM (a partial placement)."""
    splits: int = 0
    predicted_tokens_per_s: float | None = None
    """The calibrated prediction (``None`` without a speed model)."""
    tail_start: int = 0
    """``> 0``: the experts of layers ``tail_start`` to ``tail_end - 1`` are in RAM (and
    ``cpu_parts`` are those of layer ``tail_start - 1``) instead of the first layers'."""
    tail_end: int = 0
    kind: str = "gpu"
    """Where its RAM weights are, for the CUDA compute buffer (``gguf/memory.py`` kinds)."""

    @property
    def vram_bytes(self) -> int:
        """Predicted peak VRAM of the server process."""
        return (
            self.weights_vram_bytes
            + self.kv_vram_bytes
            + self.rs_vram_bytes
            + self.compute_bytes
            + self.overhead_bytes
        )

    @property
    def rank_tokens_per_s(self) -> float:
        return self.predicted_tokens_per_s or self.tokens_per_s or 0.0

    def overrides(self) -> tuple[str, ...]:
        """The ``-ot`` rules of a partial or a last-layers placement."""
        rules = []
        if self.tail_start < self.tail_end:
            layers = "|".join(str(i) for i in range(self.tail_start, self.tail_end))
            rules.append(rf"blk\.({layers})\.ffn_(gate|up|down|gate_up)_exps=CPU")
        if self.cpu_parts:
            il = self.tail_start - 1 if self.tail_start else self.n_cpu_moe
            rules.append(rf"blk\.{il}\.ffn_({'|'.join(self.cpu_parts)})_exps=CPU")
        return tuple(rules)

    def flags(self) -> list[str]:
        """The llama-server flags for this placement (``-ot`` before ``--n-cpu-moe``, as the
        profile-flag table orders them)."""
        cpu_moe = flag_args("n_cpu_moe", self.n_cpu_moe) if self.n_cpu_moe else []
        ot = flag_args("override_tensor", self.overrides()) if self.overrides() else []
        return [*flag_args("n_gpu_layers", self.n_gpu_layers), *ot, *cpu_moe]

    def label(self) -> str:
        return " ".join(self.flags())


@dataclass(frozen=True)
class FitReport:
    """``advise``'s answer: the ranked options that fit and what went into them."""

    request: FitRequest
    model_name: str
    n_layer: int
    expert_count: int | None
    cells: KvCells
    kv_bytes_per_cell: int
    """K + V bytes per token of the widest attention layer."""
    kv_layers: tuple[int, ...]
    compute: ComputeEstimate
    options: tuple[FitOption, ...]
    """The options that fit, fastest first (then the one with the most VRAM to spare)."""
    considered: int
    smallest: FitOption
    """The option needing the least VRAM (shown when nothing fits)."""
    notes: tuple[str, ...] = field(default_factory=tuple)
    kv_bytes_total: int = 0
    rs_bytes_total: int = 0
    recurrent_layers: tuple[int, ...] = ()
    all_options: tuple[FitOption, ...] = ()
    """Every placement considered, fitting or not (for comparing with measured ones)."""

    @property
    def best(self) -> FitOption | None:
        return self.options[0] if self.options else None

    def find(
        self,
        n_gpu_layers: int,
        n_cpu_moe: int,
        cpu_parts: tuple[str, ...] = (),
        tail_start: int = 0,
    ) -> FitOption:
        """The option for these flags (fitting or not)."""
        want = (n_gpu_layers, n_cpu_moe, cpu_parts, tail_start)
        for o in self.all_options:
            if (o.n_gpu_layers, o.n_cpu_moe, o.cpu_parts, o.tail_start) == want:
                return o
        raise UserError(f"no placement -ngl {n_gpu_layers} --n-cpu-moe {n_cpu_moe} {cpu_parts}")


def advise(layout: GgufLayout, req: FitRequest) -> FitReport:
    """Every distinct placement of ``layout``, ranked for ``req``; refuses settings llama.cpp
    would refuse (``valid.problems``)."""
    if req.vram_bytes <= 0:
        raise UserError("VRAM must be positive")
    bad = problems(layout, req)
    if bad:
        raise UserError("llama-server would not run these settings: " + "; ".join(bad))
    n_layer = layout.block_count
    cells = kv_cells(req.ctx, req.parallel)
    per_cell = kv_bytes_per_cell(layout, req.cache_type_k, req.cache_type_v)
    kv_idx = kv_layers(layout)
    compute = compute_buffer(
        layout,
        cells,
        req.ubatch,
        n_batch=req.batch,
        flash_attn=req.flash_attn,
        n_seq_max=slots(req.parallel),
    )
    layers = layer_bytes(layout, req, per_cell)
    outside = outside_layers(layout)
    has_experts = bool(layout.expert_count) and any(x.experts for x in layers)
    options: list[FitOption] = []
    for ngl in range(n_layer + 1, -1, -1):
        start = min(max(n_layer + 1 - ngl, 0), n_layer)
        cuts = range(start, n_layer + 1) if has_experts else range(start, start + 1)
        for cut in cuts:
            options.append(_option(req, layers, ngl, start, cut, (), compute, outside))
            partial = req.partial_layers and ngl == n_layer + 1 and cut < n_layer
            for parts in PARTIAL_SETS if partial else ():
                if all(p in layers[cut].experts for p in parts):
                    options.append(_option(req, layers, ngl, start, cut, parts, compute, outside))
    trunk = layout.n_layer_trunk
    for first in range(trunk, 0, -1) if has_experts and req.tail_layers else ():
        tail = (first, trunk)  # first == trunk: only part of the last layer's experts in RAM
        if first < trunk:
            options.append(_option(req, layers, n_layer + 1, 0, 0, (), compute, outside, tail))
        for parts in PARTIAL_SETS if req.partial_layers else ():
            if all(p in layers[first - 1].experts for p in parts):
                options.append(
                    _option(req, layers, n_layer + 1, 0, 0, parts, compute, outside, tail)
                )
    fitting = sorted(
        (o for o in options if o.fits),
        key=lambda o: (-o.rank_tokens_per_s, o.vram_bytes, -o.n_gpu_layers),
    )
    notes = []
    if layout.recurrent_layers:
        notes.append(
            f"hybrid model: KV cache in {len(kv_idx)} of {layout.n_layer_trunk} layers, "
            f"recurrent state in {len(layout.recurrent_layers)}"
        )
    if layout.nextn_layers and not req.mtp:
        notes.append(f"{layout.nextn_layers} MTP block(s) not loaded (no draft-MTP)")
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
        kv_bytes_total=sum(x.kv for x in layers),
        rs_bytes_total=sum(x.rs for x in layers),
        recurrent_layers=layout.recurrent_layers,
        all_options=tuple(options),
    )


def rs_bytes(layout: GgufLayout, req: FitRequest) -> int:
    """All recurrent state for ``req`` (every recurrent layer)."""
    n_rs = req.draft_max if req.mtp and layout.nextn_layers else 0
    return len(layout.recurrent_layers) * rs_layer_bytes(layout, slots(req.parallel), n_rs)


def _option(
    req: FitRequest,
    layers: list[LayerBytes],
    ngl: int,
    start: int,
    cut: int,
    cpu_parts: tuple[str, ...],
    compute: ComputeEstimate,
    outside: tuple[int, int, int],
    tail: tuple[int, int] = (0, 0),
) -> FitOption:
    out_bytes, embd_stored, embd_token = outside
    tail_start, tail_end = tail

    def in_ram(i: int, part: str) -> bool:
        if tail_start:
            return tail_start <= i < tail_end or (i == tail_start - 1 and part in cpu_parts)
        return i < cut or (i == cut and part in cpu_parts)

    w_vram = w_ram = kv_vram = kv_ram = rs_vram = rs_ram = gpu_experts = 0
    tok_vram = tok_ram = splits = 0
    prev_gpu = False  # the input layer (embedding) is on the CPU
    for i, layer in enumerate(layers):
        kv_read = layer.kv_cell * min(req.depth, layer.kv // max(layer.kv_cell, 1))
        if i >= start:
            w_vram += layer.non_expert
            tok_vram += layer.non_expert_token + kv_read
            kv_vram += layer.kv
            rs_vram += layer.rs
            splits += 0 if prev_gpu else 1
            prev_gpu = True
            ram_here = False
            for part, (stored, token) in layer.experts.items():
                if in_ram(i, part):
                    w_ram += stored
                    tok_ram += token
                    ram_here = True
                else:
                    w_vram += stored
                    gpu_experts += stored
                    tok_vram += token
            splits += 2 if ram_here else 0  # to the CPU's experts and back
        else:
            w_ram += layer.non_expert + layer.expert_bytes
            tok_ram += layer.non_expert_token + layer.expert_token + kv_read
            kv_ram += layer.kv
            rs_ram += layer.rs
            splits += 1 if prev_gpu else 0
            prev_gpu = False
    output_on_gpu = ngl >= 1
    if output_on_gpu:
        w_vram += out_bytes
        tok_vram += out_bytes
        splits += 0 if prev_gpu else 1
    else:
        w_ram += out_bytes
        tok_ram += out_bytes
    w_ram += embd_stored
    tok_ram += embd_token
    traffic = Traffic(tok_ram, tok_vram, splits)
    if start > 0:
        kind = "cpu_layers"
    elif tail_start:
        first = tail_start - 1 if cpu_parts else tail_start
        kind = "tail" if first >= tail_end - tail_end // 4 else "head"  # memory.placement_kind
    else:
        kind = "head" if cut > 0 or cpu_parts else "gpu"
    gpu_compute = req.compute_for(compute, kind)
    vram = w_vram + kv_vram + rs_vram + gpu_compute + req.overhead_bytes
    return FitOption(
        n_gpu_layers=ngl,
        n_cpu_moe=cut if cut > start or cpu_parts else 0,
        gpu_layer_count=len(layers) - start,
        output_on_gpu=output_on_gpu,
        weights_vram_bytes=w_vram,
        kv_vram_bytes=kv_vram,
        compute_bytes=gpu_compute,
        overhead_bytes=req.overhead_bytes,
        weights_ram_bytes=w_ram,
        kv_ram_bytes=kv_ram,
        gpu_expert_bytes=gpu_experts,
        ram_bytes_per_token=tok_ram,
        vram_bytes_per_token=tok_vram,
        tokens_per_s=roofline_tokens_per_s(
            traffic, req.ram_bandwidth_bytes_per_s, req.vram_bandwidth_bytes_per_s
        ),
        fits=vram + req.margin_bytes <= req.vram_bytes,
        rs_vram_bytes=rs_vram,
        rs_ram_bytes=rs_ram,
        cpu_parts=cpu_parts,
        splits=splits,
        predicted_tokens_per_s=req.speed.tokens_per_s(traffic) if req.speed else None,
        tail_start=tail_start,
        tail_end=tail_end,
        kind=kind,
    )


def option_traffic(o: FitOption) -> Traffic:
    """What one token costs at ``o`` (for calibrating on a measured run of it)."""
    return Traffic(o.ram_bytes_per_token, o.vram_bytes_per_token, o.splits)
