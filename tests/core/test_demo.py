"""The demo model generator (``core.demo_model``) and ``prepare_demo`` (``core.demo``).

Unit tests need only numpy and gguf; the ``integration`` ones run the real llama-quantize and
llama-imatrix and are skipped only when those cannot be found.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest

from coder_tui.core.demo.build import (
    DEFAULT_QUANTS,
    SIZES,
    DemoResult,
    DemoSpec,
    needs_imatrix,
    prepare_demo,
    write_f16_model,
)
from coder_tui.core.demo.model import RESERVED, calibration_text, token_bias
from coder_tui.core.demo.vocab import (
    CHAT_TEMPLATE,
    build_vocab,
    bytes_to_unicode,
    token_text_bytes,
)
from coder_tui.core.errors import UserError
from coder_tui.core.server.binary import BinaryNotFound, find_tool

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SMALL = SIZES["small"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tool(name: str) -> Path | None:
    try:
        return find_tool(name)
    except BinaryNotFound:
        return None


# CI sets CODER_TUI_REQUIRE_SERVER=1: there a missing tool fails the test instead of skipping it.
needs_quantize = pytest.mark.skipif(
    not os.environ.get("CODER_TUI_REQUIRE_SERVER")
    and (_tool("llama-quantize") is None or _tool("llama-imatrix") is None),
    reason="llama-quantize / llama-imatrix not found",
)


@pytest.fixture(scope="module")
def small_f16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "small-f16.gguf"
    write_f16_model(path, SMALL)
    return path


# --- spec -----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", sorted(SIZES))
def test_sizes_quantize_cleanly(size: str) -> None:
    spec = SIZES[size]
    assert spec.problems() == []
    assert spec.n_embd % 256 == 0
    assert (spec.n_head * spec.head_dim) % 256 == 0
    assert spec.n_ff_exp % 256 == 0
    assert spec.context_length >= 32768


def test_bench_is_about_500_mb_at_f16() -> None:
    s = SIZES["bench"]
    experts = s.n_layer * s.n_expert * 3 * s.n_embd * s.n_ff_exp
    attn = s.n_layer * 2 * s.n_embd * (s.n_head + s.n_head_kv) * s.head_dim
    assert 400e6 < 2 * (experts + attn) < 600e6


def test_bad_spec_is_refused(tmp_path: Path) -> None:
    bad = dataclasses.replace(SMALL, n_embd=320, n_ff_exp=100, context_length=4096)
    problems = bad.problems()
    assert any("n_embd" in p for p in problems)
    assert any("n_ff_exp" in p for p in problems)
    assert any("context_length" in p for p in problems)
    with pytest.raises(ValueError, match="n_embd"):
        write_f16_model(tmp_path / "bad.gguf", bad)
    assert list(tmp_path.iterdir()) == []


# --- tokenizer --------------------------------------------------------------------------------


def test_byte_table_is_gpt2s() -> None:
    table = bytes_to_unicode()
    assert len(set(table.values())) == 256
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("A")] == "A"
    assert all(token_text_bytes(ch) == bytes([b]) for b, ch in table.items())


def test_vocab_invariants() -> None:
    vocab = build_vocab()
    table = bytes_to_unicode()
    assert list(vocab.tokens[:256]) == [table[b] for b in range(256)]
    assert len(set(vocab.tokens)) == len(vocab.tokens)
    known = set(vocab.tokens)
    for merge in vocab.merges:
        left, right = merge.split(" ")
        assert left in known and right in known and left + right in known
    assert len(set(vocab.merges)) == len(vocab.merges)
    specials = {vocab.tokens[i] for i, t in enumerate(vocab.token_types) if t == 3}
    assert specials == {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}
    assert vocab.tokens[vocab.eos_id] == "<|im_end|>"
    assert vocab.tokens[vocab.im_start_id] == "<|im_start|>"
    for token, raw, kind in zip(vocab.tokens, vocab.token_bytes, vocab.token_types, strict=True):
        if kind == 1:
            assert token_text_bytes(token) == raw


def test_bias_allows_only_printable_text_and_eos() -> None:
    vocab = build_vocab()
    bias = token_bias(vocab, SMALL)
    allowed = [i for i, b in enumerate(bias) if b > -10]
    assert vocab.eos_id in allowed and bias[vocab.eos_id] == SMALL.eos_bias
    for i in allowed:
        if i != vocab.eos_id:
            assert all(0x20 <= b < 0x7F or b == 0x0A for b in vocab.token_bytes[i])
    assert bias[vocab.im_start_id] < -10 and bias[0x80] < -10 and bias[0x00] < -10


def test_calibration_text_is_deterministic_ascii() -> None:
    text = calibration_text()
    assert text == calibration_text()
    assert text != calibration_text(seed=1)
    assert 2000 < len(text) < 20000
    assert text.isascii() and "<|im_start|>" in text


def test_chat_template_is_chatml() -> None:
    jinja2 = pytest.importorskip("jinja2")
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}]
    out = jinja2.Template(CHAT_TEMPLATE).render(messages=msgs, add_generation_prompt=True)
    assert out == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )


# --- the F16 file ---------------------------------------------------------------------------


def test_f16_is_byte_deterministic(tmp_path: Path, small_f16: Path) -> None:
    again = tmp_path / "again.gguf"
    write_f16_model(again, SMALL)
    assert _sha(again) == _sha(small_f16)
    other = tmp_path / "other.gguf"
    write_f16_model(other, dataclasses.replace(SMALL, seed=1))
    assert _sha(other) != _sha(small_f16)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def _field(reader: gguf.GGUFReader, key: str) -> object:
    return reader.fields[key].contents()


def test_f16_reads_back_as_qwen3moe(small_f16: Path) -> None:
    r = gguf.GGUFReader(small_f16)
    s, vocab = SMALL, build_vocab()
    assert _field(r, "general.architecture") == "qwen3moe"
    expected = {
        "qwen3moe.context_length": s.context_length,
        "qwen3moe.embedding_length": s.n_embd,
        "qwen3moe.block_count": s.n_layer,
        "qwen3moe.attention.head_count": s.n_head,
        "qwen3moe.attention.head_count_kv": s.n_head_kv,
        "qwen3moe.attention.key_length": s.head_dim,
        "qwen3moe.attention.value_length": s.head_dim,
        "qwen3moe.expert_count": s.n_expert,
        "qwen3moe.expert_used_count": s.n_expert_used,
        "qwen3moe.expert_feed_forward_length": s.n_ff_exp,
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "qwen2",
        "tokenizer.ggml.eos_token_id": vocab.eos_id,
        "tokenizer.chat_template": CHAT_TEMPLATE,
        "general.file_type": 1,
    }
    for key, value in expected.items():
        assert _field(r, key) == value, key
    assert _field(r, "tokenizer.ggml.tokens") == list(vocab.tokens)
    assert _field(r, "tokenizer.ggml.merges") == list(vocab.merges)

    tensors = {t.name: t for t in r.tensors}
    n_vocab, d = len(vocab.tokens), s.n_embd
    shapes = {  # ggml ne order, as llama.cpp's loader asks for them
        "token_embd.weight": [d, n_vocab],
        "output.weight": [d, n_vocab],
        "output_norm.weight": [d],
        "blk.0.attn_q.weight": [d, s.n_head * s.head_dim],
        "blk.0.attn_k.weight": [d, s.n_head_kv * s.head_dim],
        "blk.0.attn_output.weight": [s.n_head * s.head_dim, d],
        "blk.0.attn_q_norm.weight": [s.head_dim],
        "blk.0.attn_k_norm.weight": [s.head_dim],
        "blk.0.ffn_gate_inp.weight": [d, s.n_expert],
        "blk.0.ffn_gate_exps.weight": [d, s.n_ff_exp, s.n_expert],
        "blk.0.ffn_up_exps.weight": [d, s.n_ff_exp, s.n_expert],
        "blk.0.ffn_down_exps.weight": [s.n_ff_exp, d, s.n_expert],
    }
    for name, shape in shapes.items():
        assert [int(x) for x in tensors[name].shape] == shape, name
    assert len(tensors) == 3 + 12 * s.n_layer
    assert tensors["blk.0.ffn_up_exps.weight"].tensor_type == gguf.GGMLQuantizationType.F16
    assert tensors["blk.0.ffn_gate_inp.weight"].tensor_type == gguf.GGMLQuantizationType.F32


def test_reserved_channels_are_constant_and_untouched(small_f16: Path) -> None:
    r = gguf.GGUFReader(small_f16)
    t = {x.name: np.asarray(x.data, dtype=np.float32) for x in r.tensors}
    live = SMALL.n_embd - RESERVED
    assert np.all(t["token_embd.weight"][:, live:] == 1.0)
    for name in ("attn_q", "attn_k", "attn_v", "ffn_gate_inp", "ffn_gate_exps", "ffn_up_exps"):
        assert not t[f"blk.1.{name}.weight"][..., live:].any(), name  # never read
    assert not t["blk.1.attn_output.weight"][live:, :].any()  # never written
    assert not t["blk.1.ffn_down_exps.weight"][:, live:, :].any()
    bias = t["output.weight"][:, live:].sum(axis=1)
    vocab = build_vocab()
    assert bias[vocab.eos_id] == pytest.approx(SMALL.eos_bias, abs=0.05)


# --- prepare_demo (no binaries needed) ------------------------------------------------------


def test_unknown_size_and_quant_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown demo size"):
        prepare_demo(tmp_path, "huge")
    with pytest.raises(UserError, match="unknown quant type"):
        prepare_demo(tmp_path, "small", ["Q9_9"])


def test_f16_only_needs_no_binaries(tmp_path: Path) -> None:
    result = prepare_demo(tmp_path, "small", ["F16"], port=9001)
    assert set(result.models) == {"f16"}
    config = tomllib.loads(result.config_path.read_text())
    assert config["default_profile"] == "f16"
    assert config["server"] == {"port": 9001, "ready_timeout_s": 120}
    assert config["profiles"]["f16"]["model"] == str(result.models["f16"])


def test_failing_tool_reports_its_output(tmp_path: Path) -> None:
    fake = tmp_path / "fake-quantize"
    fake.write_text(f"#!{sys.executable}\nprint('line one')\nprint('boom: bad tensor')\nexit(3)\n")
    fake.chmod(0o755)
    with pytest.raises(UserError, match=r"(?s)exit 3.*boom: bad tensor"):
        prepare_demo(tmp_path / "out", "small", ["Q8_0"], quantize_bin=fake)
    assert not any(p.name.startswith(".") for p in (tmp_path / "out" / "small").iterdir())


def test_quantizing_shows_progress_with_an_eta(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``demo --size bench`` spent ~50 s quantizing with nothing said: each step now says which
    of how many, ticks while it runs, and from the second on how long the rest takes."""
    import re

    from coder_tui.core.demo import build

    fake = tmp_path / "fake-quantize"
    fake.write_text(
        f"#!{sys.executable}\nimport sys, time\ntime.sleep(0.6)\n"
        "open(sys.argv[2], 'wb').write(b'GGUF')\n"
    )
    fake.chmod(0o755)
    monkeypatch.setattr(build, "TICK_S", 0.2)
    messages: list[str] = []
    prepare_demo(
        tmp_path / "out", "small", ["Q8_0", "Q4_K_M"], quantize_bin=fake, progress=messages.append
    )
    said = [m for m in messages if m.startswith("quantizing")]
    assert said[0] == "quantizing demo-small-Q8_0.gguf (1/2)"
    assert any(re.fullmatch(r"quantizing demo-small-Q8_0.gguf \(1/2\): \d+ s", m) for m in said)
    assert any(
        re.fullmatch(r"quantizing demo-small-Q4_K_M.gguf \(2/2, about \d+ s left\)", m)
        for m in said
    ), said
    # Q8_0 took 2 s: Q4_K_M (9x) and IQ2_XXS (70x) are about 158 s more, 5 s in
    assert build.step_eta([(1.0, 2.0)], [9.0, 70.0], elapsed_s=5.0) == "about 153 s left"
    assert build.step_eta([(1.0, 2.0)], [9.0], elapsed_s=30.0) == "longer than estimated"
    assert build.step_eta([], [1.0]) == ""
    assert build.quant_cost("iq2_xxs") > build.quant_cost("Q4_K_M") > build.quant_cost("Q8_0")


def test_needs_imatrix() -> None:
    assert needs_imatrix("IQ2_XXS") and needs_imatrix("iq3_xxs")
    assert not needs_imatrix("Q4_K_M") and not needs_imatrix("Q8_0")


# --- with the real llama.cpp tools ----------------------------------------------------------


@pytest.mark.integration
@needs_quantize
def test_prepare_demo_quantizes_reuses_and_is_deterministic(tmp_path: Path) -> None:
    messages: list[str] = []
    first = prepare_demo(tmp_path / "a", progress=messages.append)
    assert isinstance(first, DemoResult)
    assert set(first.models) == {"f16", "q8_0", "q4_k_m", "iq2_xxs"}
    types = {
        "q8_0": gguf.GGMLQuantizationType.Q8_0,
        "q4_k_m": gguf.GGMLQuantizationType.Q4_K,
        "iq2_xxs": gguf.GGMLQuantizationType.IQ2_XXS,
    }
    for profile, qtype in types.items():
        r = gguf.GGUFReader(first.models[profile])
        exps = [t for t in r.tensors if t.name == "blk.0.ffn_up_exps.weight"]
        assert exps[0].tensor_type == qtype, profile  # no fallback to another type
    sizes = [first.models[p].stat().st_size for p in ("f16", "q8_0", "q4_k_m", "iq2_xxs")]
    assert sizes == sorted(sizes, reverse=True)

    config = tomllib.loads(first.config_path.read_text())
    assert config["default_profile"] == "q4_k_m"
    for name, path in first.models.items():
        profile = config["profiles"][name]
        assert profile["model"] == str(path) and Path(profile["model"]).is_absolute()
        assert profile["ctx"] == 4096 and profile["n_gpu_layers"] == 99 and profile["jinja"]
        assert 1 <= profile["threads"] <= 4

    # Second call: nothing rebuilt.
    before = {p: path.stat().st_mtime_ns for p, path in first.models.items()}
    messages.clear()
    prepare_demo(tmp_path / "a", progress=messages.append)
    assert [m for m in messages if not m.startswith("wrote")] == []
    assert {p: path.stat().st_mtime_ns for p, path in first.models.items()} == before

    # A corrupt quant (same size, new mtime) and a missing one are rebuilt, the rest kept.
    q4 = first.models["q4_k_m"]
    good_q4 = _sha(q4)
    data = bytearray(q4.read_bytes())
    data[-100] ^= 0xFF
    q4.write_bytes(bytes(data))
    first.models["q8_0"].unlink()
    messages.clear()
    prepare_demo(tmp_path / "a", progress=messages.append)
    assert sorted(m.split(" (")[0] for m in messages if m.startswith("quantizing")) == [
        "quantizing demo-small-Q4_K_M.gguf",
        "quantizing demo-small-Q8_0.gguf",
    ]
    assert _sha(q4) == good_q4

    # Elsewhere, the same bytes: quantization and the imatrix are deterministic.
    second = prepare_demo(tmp_path / "b", quants=DEFAULT_QUANTS)
    for profile, path in first.models.items():
        assert _sha(second.models[profile]) == _sha(path), profile
    assert _sha(tmp_path / "a/small/imatrix.gguf") == _sha(tmp_path / "b/small/imatrix.gguf")


def test_spec_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        SMALL.n_layer = 3  # type: ignore[misc]
    assert isinstance(SMALL, DemoSpec)
