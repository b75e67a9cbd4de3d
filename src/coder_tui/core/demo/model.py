"""The tiny synthetic MoE model behind ``coder-tui demo``: its shape, weights and F16 GGUF writer.

Owns ``DemoSpec`` and ``SIZES``, the per-token logit bias, the calibration text for
``llama-imatrix`` and ``write_f16_model``. The tokenizer (byte-level BPE vocabulary, ChatML) is
``demo_vocab.py``'s. Quantizing, caching and the demo
config belong to ``demo.py``.

The weights are random (seeded per tensor, so the same spec always gives the same bytes) but laid
out like Qwen3-MoE (``qwen3moe``: q/k norms, router, 3-D expert tensors). So that a chat pane shows
sane text, the last ``RESERVED`` residual channels hold a constant 1 set by the token embeddings;
no layer reads or writes them (those rows/columns are zero), so after the final RMSNorm they carry
a near-constant value that the output matrix turns into a per-token logit bias: printable ASCII
favoured, bytes that would break UTF-8 and control tokens ruled out, and ``<|im_end|>`` given a
tunable bias so replies end by themselves.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coder_tui.core.demo.vocab import (
    BIGRAMS_TEXT,
    CHAT_TEMPLATE,
    CODE_PIECES,
    NORMAL,
    WORDS_TEXT,
    Vocab,
    build_vocab,
)

ARCH = "qwen3moe"
RESERVED = 32
"""Residual channels kept constant (one quant sub-block, so quantization keeps them clean)."""
BANNED_BIAS = -40.0
"""Logit bias of tokens the demo model must never emit."""


@dataclass(frozen=True)
class DemoSpec:
    """Shape of a demo model. Widths that quantize in blocks are multiples of 256 (k/i-quants)."""

    name: str
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_expert: int
    n_expert_used: int
    n_ff_exp: int
    context_length: int = 32768
    seed: int = 0
    eos_bias: float = 0.0
    """Logit bias of ``<|im_end|>``: higher ends replies sooner."""
    logit_scale: float = 2.5
    """Standard deviation of the random part of the logits (variety of the text)."""

    def problems(self) -> list[str]:
        """Reasons this spec cannot make a model that k/i-quants keep as asked (empty if fine)."""
        out: list[str] = []
        for field_name, value in (
            ("n_embd", self.n_embd),
            ("n_head*head_dim", self.n_head * self.head_dim),
            ("n_ff_exp", self.n_ff_exp),
        ):
            if value <= 0 or value % 256:
                out.append(f"{field_name} = {value} is not a positive multiple of 256")
        if self.n_embd <= RESERVED:
            out.append(f"n_embd must exceed the {RESERVED} reserved channels")
        if self.n_head_kv <= 0 or self.n_head % self.n_head_kv:
            out.append("n_head must be a multiple of n_head_kv")
        if not 0 < self.n_expert_used <= self.n_expert:
            out.append("n_expert_used must be between 1 and n_expert")
        if self.context_length < 32768:
            out.append("context_length must be at least 32768")
        return out


SIZES: dict[str, DemoSpec] = {
    "small": DemoSpec(
        name="small", n_layer=2, n_embd=256, n_head=4, n_head_kv=2, head_dim=64,
        n_expert=8, n_expert_used=2, n_ff_exp=256, eos_bias=2.0,
    ),
    "bench": DemoSpec(
        name="bench", n_layer=16, n_embd=1024, n_head=8, n_head_kv=2, head_dim=128,
        n_expert=8, n_expert_used=4, n_ff_exp=512, eos_bias=2.5,
    ),
}  # fmt: skip


_MARKUP = frozenset(b"`*_#<>|\\~^[]{}$&")


def token_bias(vocab: Vocab, spec: DemoSpec) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Per-token logit bias: words and spaces favoured, non-printable bytes and specials banned."""
    words = WORDS_TEXT.split()
    spaced = {" " + w for w in words}
    pieces = {*words, *BIGRAMS_TEXT.split(), *CODE_PIECES}
    bias = np.full(len(vocab.tokens), BANNED_BIAS, dtype=np.float32)
    for i, (raw, kind) in enumerate(zip(vocab.token_bytes, vocab.token_types, strict=True)):
        if kind != NORMAL:
            continue
        if not all(0x20 <= b < 0x7F or b == 0x0A for b in raw):
            continue
        text = raw.decode("ascii")
        if "\n" in text:
            value = -2.5
        elif text in spaced:
            value = 2.0  # " word": output reads as words separated by spaces
        elif text in pieces:
            value = 0.0
        elif len(raw) > 1:
            value = -1.5  # a prefix the merge chains made on the way to a word
        elif text == " ":
            value = 0.5
        elif text.islower():
            value = 0.3
        elif raw[0] in _MARKUP:
            value = -4.0
        elif text.isupper() or text.isdigit():
            value = -1.0
        else:
            value = -1.5
        bias[i] = value
    bias[vocab.eos_id] = spec.eos_bias
    return bias


def calibration_text(seed: int = 0, n_chars: int = 6000) -> str:
    """Deterministic ChatML-formatted prose and code for ``llama-imatrix`` (a few KB)."""
    rng = random.Random(seed)
    vocab_words = WORDS_TEXT.split()
    parts: list[str] = []
    size = 0
    while size < n_chars:
        words = [rng.choice(vocab_words) for _ in range(rng.randint(6, 18))]
        sentence = " ".join(words).capitalize() + rng.choice((".", "?", "!", ":"))
        name, arg = rng.choice(vocab_words), rng.choice(vocab_words)
        code = f"def {name}_{rng.randint(0, 99)}({arg}):\n    return {arg} + {rng.randint(1, 9)}\n"
        role = rng.choice(("user", "assistant"))
        chunk = f"<|im_start|>{role}\n{sentence}\n{code}<|im_end|>\n"
        parts.append(chunk)
        size += len(chunk)
    return "".join(parts)


def _rng(spec: DemoSpec, name: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{spec.seed}:{name}".encode()).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest[:8], "little")))


def _normal(spec: DemoSpec, name: str, shape: tuple[int, ...], std: float) -> np.ndarray[Any, Any]:
    out: np.ndarray[Any, Any] = _rng(spec, name).standard_normal(shape, dtype=np.float32)
    out *= np.float32(std)
    return out


Plan = list[tuple[str, tuple[int, ...], Callable[[], "np.ndarray[Any, Any]"]]]


def _plan(spec: DemoSpec, vocab: Vocab) -> Plan:
    """Every tensor in file order: name, numpy shape (ggml ``ne`` reversed), lazy F32 factory."""
    d, live = spec.n_embd, spec.n_embd - RESERVED
    q_dim, kv_dim = spec.n_head * spec.head_dim, spec.n_head_kv * spec.head_dim
    n_vocab, n_exp, n_ff = len(vocab.tokens), spec.n_expert, spec.n_ff_exp
    # Each layer adds about step**2 variance per channel, so the residual stays near unit RMS.
    step = 0.5 / np.sqrt(spec.n_layer)
    plan: Plan = []

    def ones(n: int) -> Callable[[], np.ndarray[Any, Any]]:
        return lambda: np.ones(n, dtype=np.float32)

    def reads(name: str, shape: tuple[int, ...]) -> Callable[[], np.ndarray[Any, Any]]:
        def make() -> np.ndarray[Any, Any]:
            w = _normal(spec, name, shape, 1.0 / np.sqrt(live))
            w[..., live:] = 0.0  # never read the reserved channels
            return w

        return make

    def writes(name: str, shape: tuple[int, ...], std: float) -> Callable[[], np.ndarray[Any, Any]]:
        def make() -> np.ndarray[Any, Any]:
            w = _normal(spec, name, shape, std)
            w[..., live:, :] = 0.0  # never write them
            return w

        return make

    def embd() -> np.ndarray[Any, Any]:
        w = _normal(spec, "token_embd", (n_vocab, d), 1.0)
        w[:, :live] /= np.sqrt(np.mean(w[:, :live] ** 2, axis=1, keepdims=True))
        w[:, live:] = 1.0
        return w

    plan.append(("token_embd.weight", (n_vocab, d), embd))
    for i in range(spec.n_layer):
        p = f"blk.{i}."
        plan.append((p + "attn_norm.weight", (d,), ones(d)))
        for name, rows in (("attn_q", q_dim), ("attn_k", kv_dim), ("attn_v", kv_dim)):
            plan.append((p + name + ".weight", (rows, d), reads(p + name, (rows, d))))
        wo_std = step / np.sqrt(q_dim)
        plan.append((p + "attn_output.weight", (d, q_dim), writes(p + "wo", (d, q_dim), wo_std)))
        plan.append((p + "attn_k_norm.weight", (spec.head_dim,), ones(spec.head_dim)))
        plan.append((p + "attn_q_norm.weight", (spec.head_dim,), ones(spec.head_dim)))
        plan.append((p + "ffn_norm.weight", (d,), ones(d)))
        router = reads(p + "ffn_gate_inp", (n_exp, d))
        plan.append((p + "ffn_gate_inp.weight", (n_exp, d), router))
        for name in ("ffn_gate_exps", "ffn_up_exps"):
            plan.append((p + name + ".weight", (n_exp, n_ff, d), reads(p + name, (n_exp, n_ff, d))))
        # silu(g) * u has RMS ~0.6 for unit g and u: scale so the experts add ~step per channel.
        down = writes(p + "ffn_down_exps", (n_exp, d, n_ff), step / (0.6 * np.sqrt(n_ff)))
        plan.append((p + "ffn_down_exps.weight", (n_exp, d, n_ff), down))

    # Expected final residual: reserved channels at 1, the rest at mean square live_ms. The output
    # norm brings live channels back to ~unit and each reserved channel to ~1, so the output
    # matrix's reserved columns (bias / RESERVED each) add ~bias to every logit.
    live_ms = 1.0 + 2.0 * spec.n_layer * step**2
    rms = float(np.sqrt((RESERVED + live * live_ms) / d))

    def norm() -> np.ndarray[Any, Any]:
        w = np.full(d, rms, dtype=np.float32)
        w[:live] /= np.sqrt(live_ms)
        return w

    def output() -> np.ndarray[Any, Any]:
        w = _normal(spec, "output", (n_vocab, d), spec.logit_scale / np.sqrt(live))
        w[:, live:] = token_bias(vocab, spec)[:, None] / RESERVED
        return w

    plan.append(("output_norm.weight", (d,), norm))
    plan.append(("output.weight", (n_vocab, d), output))
    return plan


def _stored_dtype(name: str, shape: tuple[int, ...]) -> type[np.floating[Any]]:
    # Norms and the router stay F32 as convert_hf_to_gguf.py leaves them; llama-quantize skips both.
    if len(shape) == 1 or name.endswith("ffn_gate_inp.weight"):
        return np.float32
    return np.float16


def _add_metadata(writer: Any, spec: DemoSpec, vocab: Vocab) -> None:
    writer.add_name(f"coder-tui demo {ARCH} {spec.name}")
    writer.add_file_type(1)  # LLAMA_FTYPE_MOSTLY_F16
    writer.add_context_length(spec.context_length)
    writer.add_embedding_length(spec.n_embd)
    writer.add_block_count(spec.n_layer)
    writer.add_feed_forward_length(spec.n_ff_exp * spec.n_expert_used)
    writer.add_expert_feed_forward_length(spec.n_ff_exp)
    writer.add_head_count(spec.n_head)
    writer.add_head_count_kv(spec.n_head_kv)
    writer.add_key_length(spec.head_dim)
    writer.add_value_length(spec.head_dim)
    writer.add_rope_freq_base(1_000_000.0)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_expert_count(spec.n_expert)
    writer.add_expert_used_count(spec.n_expert_used)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(list(vocab.tokens))
    writer.add_token_types(list(vocab.token_types))
    writer.add_token_merges(list(vocab.merges))
    writer.add_eos_token_id(vocab.eos_id)
    writer.add_bos_token_id(vocab.bos_id)
    writer.add_pad_token_id(vocab.bos_id)
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)


def write_f16_model(path: Path, spec: DemoSpec) -> None:
    """Write the demo model as an F16 GGUF at ``path`` atomically (temp file, then ``os.replace``).

    Tensors are generated one at a time, so memory stays near the largest tensor (the bench size's
    expert tensors are 8 MB each at F16).
    """
    import gguf  # heavy import kept out of module import time

    problems = spec.problems()
    if problems:
        raise ValueError(f"demo spec {spec.name!r}: " + "; ".join(problems))
    vocab = build_vocab()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    writer = gguf.GGUFWriter(tmp, ARCH)
    try:
        _add_metadata(writer, spec, vocab)
        plan = _plan(spec, vocab)
        for name, shape, _ in plan:
            dtype = _stored_dtype(name, shape)
            writer.add_tensor_info(
                name, shape, np.dtype(dtype), int(np.prod(shape)) * dtype(0).nbytes
            )
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for name, shape, make in plan:
            writer.write_tensor_data(make().astype(_stored_dtype(name, shape)))
        assert writer.fout is not None
        for fh in writer.fout:
            fh.flush()
            os.fsync(fh.fileno())
        writer.close()
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError, ValueError):
            writer.close()
        tmp.unlink(missing_ok=True)
        raise
