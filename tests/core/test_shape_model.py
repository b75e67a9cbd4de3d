"""Shape-only models: llama.cpp's tensor names and shapes, the seed's sizes, sparse files, splits,
MTP blocks; and the layout reader's view of them (hybrid layers, MTP, split parts)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from coder_tui.core.demo.shape_model import RECIPES, SHAPES, tensor_plan, write_shape_model
from coder_tui.core.gguf.header import Corrupt, header_length
from coder_tui.core.gguf.layout import read_layout, split_parts

GB = 10**9


@pytest.mark.parametrize(("recipe", "gb"), [("UD-IQ2_XXS", 26.0), ("UD-IQ3_XXS", 33.0)])
def test_qwen3next_at_the_seeds_sizes(recipe: str, gb: float) -> None:
    plan = tensor_plan(SHAPES["qwen3next"], RECIPES[recipe], 151936)
    assert sum(t.n_bytes for t in plan) / GB == pytest.approx(gb, abs=0.3)
    names = {t.name: t for t in plan}
    # every 4th layer has full attention: a query with its gate, 2 KV heads of 256
    assert names["blk.3.attn_q.weight"].ne == (2048, 16 * 256 * 2)
    assert names["blk.3.attn_k.weight"].ne == (2048, 2 * 256)
    assert "blk.3.ssm_conv1d.weight" not in names and "blk.2.attn_k.weight" not in names
    # the other layers are Gated DeltaNet: qkv of 2 * 16 * 128 + 32 * 128, a 4-tap conv
    assert names["blk.0.attn_qkv.weight"].ne == (2048, 8192)
    assert names["blk.0.ssm_conv1d.weight"].ne == (4, 8192)
    assert names["blk.0.ssm_ba.weight"].ne == (2048, 64)
    assert names["blk.47.ffn_down_exps.weight"].ne == (512, 2048, 512)
    assert names["blk.47.ffn_gate_exps.weight"].quant == recipe.removeprefix("UD-")
    assert names["blk.0.ffn_gate_inp_shexp.weight"].ne == (2048,)
    assert not any(n.startswith("blk.48.") for n in names)


def test_the_mtp_block_is_a_49th_full_attention_layer() -> None:
    plan = tensor_plan(replace(SHAPES["qwen3next"], nextn=1), RECIPES["UD-IQ2_XXS"], 151936)
    names = {t.name for t in plan}
    assert {"blk.48.attn_q.weight", "blk.48.nextn.eh_proj.weight", "blk.48.nextn.enorm.weight"} <= (
        names
    )
    assert "blk.48.ssm_conv1d.weight" not in names


def test_a_26_gb_file_is_sparse_and_reads_back(tmp_path: Path) -> None:
    path = write_shape_model(tmp_path / "m.gguf", SHAPES["qwen3next"], RECIPES["UD-IQ2_XXS"])[0]
    st = path.stat()
    assert st.st_size > 25 * GB and st.st_blocks * 512 < 64 << 20  # a few MB on disk
    layout = read_layout(path)
    assert layout.block_count == 48 and layout.n_layer_trunk == 48
    assert layout.kv_layer_indices == tuple(range(3, 48, 4))
    assert len(layout.recurrent_layers) == 36
    assert layout.ssm is not None and layout.ssm.conv_values == 3 * (4096 + 2 * 16 * 128)
    assert (layout.ssm.conv_values + layout.ssm.state_values) * 4 == 2_195_456  # 2.09 MiB


def test_tiny_mtp_and_split_models(tmp_path: Path) -> None:
    tiny = SHAPES["qwen3next-tiny"]
    mtp = read_layout(write_shape_model(tmp_path / "mtp.gguf", tiny, RECIPES["Q8_0"], mtp=True)[0])
    assert (mtp.block_count, mtp.nextn_layers, mtp.n_layer_trunk) == (5, 1, 4)
    assert mtp.is_mtp_tensor("blk.4.attn_q.weight") and not mtp.is_mtp_tensor("blk.3.attn_q.weight")
    assert mtp.kv_layer_indices == (3,)  # the MTP block holds no cache in a normal decode
    parts = write_shape_model(tmp_path / "s.gguf", tiny, RECIPES["Q8_0"], split=3)
    assert [p.name for p in parts] == [f"s-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    assert split_parts(parts[2]) == parts
    whole = read_layout(write_shape_model(tmp_path / "w.gguf", tiny, RECIPES["Q8_0"])[0])
    split = read_layout(parts[1])
    assert split.tensors == whole.tensors and split.parts == tuple(parts)
    assert split.file_size_bytes == sum(os.path.getsize(p) for p in parts)


def test_a_missing_part_is_a_user_error(tmp_path: Path) -> None:
    from coder_tui.core.errors import UserError

    parts = write_shape_model(tmp_path / "s.gguf", SHAPES["qwen3-tiny"], RECIPES["Q8_0"], split=2)
    parts[1].unlink()
    with pytest.raises(UserError, match="00002-of-00002"):
        read_layout(parts[0])


def test_header_length_needs_the_whole_header(tmp_path: Path) -> None:
    path = write_shape_model(tmp_path / "m.gguf", SHAPES["qwen3moe-tiny"], RECIPES["Q8_0"])[0]
    data = path.read_bytes()[: 4 << 20]
    end = header_length(data)
    assert end is not None and 0 < end < len(data)
    assert header_length(data[: end - 1]) is None
    assert header_length(data[:10]) is None
    with pytest.raises(Corrupt):
        header_length(b"NOPE" + data[4:100])
