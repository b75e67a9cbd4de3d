"""GgufLayout of generated qwen3moe files: bytes per layer and kind, hparams, bad files refused.

``write_moe_gguf`` (also used by test_moe.py) writes a small MoE file with chosen quant types;
expected byte counts are worked out by hand from the shapes and each type's block size.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coder_tui.core.errors import UserError
from coder_tui.core.gguf.layout import GgufLayout, read_layout

Q = gguf.GGMLQuantizationType


@dataclass(frozen=True)
class Shape:
    n_layer: int = 4
    n_embd: int = 256
    n_head: int = 2
    n_head_kv: int = 1
    head_dim: int = 128
    n_expert: int = 4
    n_expert_used: int = 2
    n_ff: int = 256
    n_vocab: int = 64


def _data(shape: tuple[int, ...], qtype: Q, seed: int) -> tuple[np.ndarray, Q | None]:
    values = np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 0.02
    if qtype is Q.F32:
        return values, None
    if qtype is Q.F16:
        return values.astype(np.float16), None
    if qtype is Q.Q8_0:
        return gguf.quants.quantize(values, qtype), qtype
    # Layout needs the declared type and size only: zero blocks of the right byte shape.
    return np.zeros(gguf.quants.quant_shape_to_byte_shape(shape, qtype), np.uint8), qtype


def write_moe_gguf(
    path: Path,
    s: Shape = Shape(),
    *,
    experts: Q = Q.Q8_0,
    attention: Q = Q.Q8_0,
    output: Q = Q.Q8_0,
    embd: Q = Q.F16,
    tied: bool = False,
) -> Path:
    """A qwen3moe file; numpy shapes are ggml's ``ne`` reversed (experts first)."""
    d, q_dim, kv_dim = s.n_embd, s.n_head * s.head_dim, s.n_head_kv * s.head_dim
    w = gguf.GGUFWriter(path, "qwen3moe")
    w.add_name("test moe")
    w.add_block_count(s.n_layer)
    w.add_context_length(4096)
    w.add_embedding_length(d)
    w.add_feed_forward_length(s.n_ff * s.n_expert_used)
    w.add_expert_feed_forward_length(s.n_ff)
    w.add_head_count(s.n_head)
    w.add_head_count_kv(s.n_head_kv)
    w.add_key_length(s.head_dim)
    w.add_value_length(s.head_dim)
    w.add_expert_count(s.n_expert)
    w.add_expert_used_count(s.n_expert_used)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(1_000_000.0)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"t{i}" for i in range(s.n_vocab)])
    plan: list[tuple[str, tuple[int, ...], Q]] = [("token_embd.weight", (s.n_vocab, d), embd)]
    for i in range(s.n_layer):
        p = f"blk.{i}."
        plan += [
            (p + "attn_norm.weight", (d,), Q.F32),
            (p + "attn_q.weight", (q_dim, d), attention),
            (p + "attn_k.weight", (kv_dim, d), attention),
            (p + "attn_v.weight", (kv_dim, d), attention),
            (p + "attn_output.weight", (d, q_dim), attention),
            (p + "attn_k_norm.weight", (s.head_dim,), Q.F32),
            (p + "attn_q_norm.weight", (s.head_dim,), Q.F32),
            (p + "ffn_norm.weight", (d,), Q.F32),
            (p + "ffn_gate_inp.weight", (s.n_expert, d), Q.F32),
            (p + "ffn_gate_exps.weight", (s.n_expert, s.n_ff, d), experts),
            (p + "ffn_up_exps.weight", (s.n_expert, s.n_ff, d), experts),
            (p + "ffn_down_exps.weight", (s.n_expert, d, s.n_ff), experts),
        ]
    plan.append(("output_norm.weight", (d,), Q.F32))
    if not tied:
        plan.append(("output.weight", (s.n_vocab, d), output))
    for k, (name, shape, qtype) in enumerate(plan):
        data, raw = _data(shape, qtype, k)
        w.add_tensor(name, data, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


# Bytes per value of each type, by hand: (bytes per block, values per block).
BLOCK = {"F32": (4, 1), "F16": (2, 1), "Q8_0": (34, 32), "Q4_K": (144, 256), "IQ2_XXS": (66, 256)}


def nbytes(n_values: int, quant: str) -> int:
    per_block, values = BLOCK[quant]
    return n_values * per_block // values


@pytest.mark.parametrize("quant", ["F16", "Q8_0", "Q4_K", "IQ2_XXS"])
def test_layer_bytes_match_hand_computed(tmp_path: Path, quant: str) -> None:
    path = write_moe_gguf(tmp_path / "m.gguf", experts=Q.__members__[quant], attention=Q.Q8_0)
    layout = read_layout(path)
    # gate and up: 4 experts x 256 x 256; down: 4 x 256 x 256 -> 3 x 262144 values per layer
    experts = 3 * nbytes(4 * 256 * 256, quant)
    attention = nbytes(256 * 256 + 128 * 256 + 128 * 256 + 256 * 256, "Q8_0")
    for layer in layout.layers:
        assert layer.expert_bytes == experts
        assert layer.expert_bytes_per_expert == experts // 4
        assert layer.router_bytes == 4 * 256 * 4
        assert layer.attention_bytes == attention
        assert layer.norm_bytes == (256 + 128 + 128 + 256) * 4
        assert layer.shared_expert_bytes == 0 and layer.other_bytes == 0
        assert {t.quant for t in layer.tensors if "_exps" in t.name} == {quant}
    assert layout.token_embd_bytes == 64 * 256 * 2
    assert layout.output_bytes == nbytes(64 * 256, "Q8_0")
    assert layout.output_norm_bytes == 256 * 4
    assert layout.quant_bytes[quant] >= 4 * experts
    assert layout.file_size_bytes == path.stat().st_size
    assert layout.tensor_bytes < layout.file_size_bytes


def test_hparams(tmp_path: Path) -> None:
    layout = read_layout(write_moe_gguf(tmp_path / "m.gguf"))
    assert isinstance(layout, GgufLayout)
    assert layout.architecture == "qwen3moe" and layout.name == "test moe"
    assert (layout.block_count, layout.expert_count, layout.expert_used_count) == (4, 4, 2)
    assert (layout.embedding_length, layout.head_count, layout.head_count_kv) == (256, 2, 1)
    assert (layout.key_length, layout.value_length, layout.context_length) == (128, 128, 4096)
    assert layout.vocab_size == 64
    assert not layout.output_tied
    assert [t.shape for t in layout.tensors if t.name == "blk.0.ffn_down_exps.weight"] == [
        (256, 256, 4)  # ggml order: experts last
    ]


def test_tied_output_uses_the_embedding(tmp_path: Path) -> None:
    layout = read_layout(write_moe_gguf(tmp_path / "m.gguf", tied=True))
    assert layout.output_tied
    assert layout.output_bytes == layout.token_embd_bytes == 64 * 256 * 2


@pytest.mark.parametrize(
    "content", [b"", b"GGUF", b"not a gguf at all" * 10, b"GGUF\x03\x00\x00\x00" + b"\xff" * 16]
)
def test_garbage_is_a_user_error(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(content)
    with pytest.raises(UserError, match=r"bad\.gguf"):
        read_layout(bad)


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"nope\.gguf"):
        read_layout(tmp_path / "nope.gguf")


@pytest.fixture(scope="module")
def small_gguf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    s = Shape(n_layer=1, n_embd=32, n_head=1, n_head_kv=1, head_dim=32, n_ff=32, n_vocab=8)
    path = tmp_path_factory.mktemp("g") / "small.gguf"
    return write_moe_gguf(path, s, experts=Q.F16, attention=Q.F16, output=Q.F16).read_bytes()


@settings(
    max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_truncated_or_flipped_files_never_crash(
    small_gguf: bytes, tmp_path: Path, data: st.DataObject
) -> None:
    blob = bytearray(small_gguf)
    if data.draw(st.booleans(), label="truncate"):
        blob = blob[: data.draw(st.integers(0, len(blob) - 1), label="length")]
    for _ in range(data.draw(st.integers(0, 4), label="flips")):
        if blob:
            # mostly in the header (key/values, tensor infos), where counts and lengths live
            end = len(blob) if data.draw(st.booleans(), label="anywhere") else min(len(blob), 4096)
            at = data.draw(st.integers(0, end - 1), label="at")
            blob[at] ^= data.draw(st.integers(1, 255), label="mask")
    path = tmp_path / f"fuzz-{os.getpid()}.gguf"
    path.write_bytes(bytes(blob))
    try:
        layout = read_layout(path)
    except UserError as exc:
        assert str(path) in str(exc)
    else:
        assert layout.block_count >= 0


@pytest.mark.integration
def test_llama_quantize_pure_q4_k(tmp_path: Path, require_tool: Callable[[str], Path]) -> None:
    """A real llama-quantize output: every 2-D weight Q4_K (144 bytes per 256 values)."""
    tool = require_tool("llama-quantize")
    src = write_moe_gguf(tmp_path / "f16.gguf", experts=Q.F16, attention=Q.F16, output=Q.F16)
    out = tmp_path / "q4k.gguf"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run(
        [str(tool), "--pure", str(src), str(out), "Q4_K"],
        check=True, capture_output=True, env=env, timeout=120,
    )  # fmt: skip
    layout = read_layout(out)
    for layer in layout.layers:
        assert layer.expert_bytes == 3 * nbytes(4 * 256 * 256, "Q4_K")
        assert layer.expert_bytes_per_expert == 3 * nbytes(256 * 256, "Q4_K")
        assert layer.attention_bytes == nbytes(196608, "Q4_K")
        assert layer.router_bytes == 4 * 256 * 4  # the router is never quantized
