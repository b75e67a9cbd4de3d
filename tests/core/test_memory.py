"""The memory model against llama-server's own numbers at real widths (unit tests, no server).

``MEASURED`` holds llama-server b11434's buffer lines (``-lv 4``, CPU) for 4-layer shape models of
Qwen3-Coder-Next (qwen3next), Qwen3-30B-A3B (qwen3moe) and Qwen3-8B (qwen3): the compute buffer
and per-layer caches do not depend on the layer count, so 4 layers keep the files small. The
same comparison against a live server is ``tests/integration/test_memory_real.py``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from coder_tui.core.demo.shape_model import RECIPES, SHAPES, write_shape_model
from coder_tui.core.gguf.layout import GgufLayout, read_layout
from coder_tui.core.gguf.memory import (
    ContextPlan,
    compute_buffer,
    context_bytes_by_layer,
    kv_cells,
    rs_layer_bytes,
    slots,
)

MIB = 1 << 20
# arch, -c, -ub, -fa, K/V type, -np (None: auto), KV MiB, RS MiB, compute MiB (llama-server's log)
MEASURED = [
    ("qwen3next", 200000, 1024, "on", "q4_0", None, 109.97, 25.12, 571.3),
    ("qwen3next", 200000, 512, "on", "q4_0", None, 109.97, 25.12, 285.78),
    ("qwen3next", 200000, 2048, "on", "q4_0", None, 109.97, 25.12, 1142.34),
    ("qwen3next", 65536, 1024, "on", "q4_0", None, 36.0, 25.12, 308.3),
    ("qwen3next", 8192, 1024, "on", "f16", None, 16.0, 25.12, 196.04),
    ("qwen3next", 8192, 256, "on", "f16", None, 16.0, 25.12, 50.38),
    ("qwen3next", 8192, 512, "off", "f16", None, 16.0, 25.12, 318.01),
    ("qwen3next", 32768, 512, "off", "f16", None, 64.0, 25.12, 1134.01),
    ("qwen3next", 8192, 1024, "on", "f16", 1, 16.0, 6.28, 196.04),
    ("qwen3next", 8192, 1024, "on", "f16", 2, 16.0, 12.56, 188.04),
    ("qwen3next", 4096, 128, "on", "f16", None, 8.0, 25.12, 32.38),
    ("qwen3next", 8192, 4096, "on", "f16", None, 16.0, 25.12, 784.14),
    ("qwen3moe", 200000, 1024, "on", "q4_0", None, 439.88, 0.0, 567.11),
    ("qwen3moe", 200000, 512, "on", "q4_0", None, 439.88, 0.0, 283.6),
    ("qwen3moe", 200000, 2048, "on", "q4_0", None, 439.88, 0.0, 1134.15),
    ("qwen3moe", 65536, 1024, "on", "q4_0", None, 144.0, 0.0, 304.11),
    ("qwen3moe", 8192, 1024, "on", "f16", None, 64.0, 0.0, 192.04),
    ("qwen3moe", 8192, 256, "on", "f16", None, 64.0, 0.0, 48.01),
    ("qwen3moe", 8192, 512, "off", "f16", None, 64.0, 0.0, 566.01),
    ("qwen3moe", 32768, 512, "off", "f16", None, 256.0, 0.0, 2150.01),
    ("qwen3moe", 8192, 1024, "on", "f16", 1, 64.0, 0.0, 192.04),
    ("qwen3moe", 8192, 1024, "on", "f16", 2, 64.0, 0.0, 184.04),
    ("qwen3moe", 4096, 128, "on", "f16", None, 32.0, 0.0, 23.0),
    ("qwen3moe", 8192, 4096, "on", "f16", None, 64.0, 0.0, 768.14),
    ("qwen3", 200000, 1024, "on", "q4_0", None, 879.75, 0.0, 615.11),
    ("qwen3", 200000, 512, "on", "q4_0", None, 879.75, 0.0, 307.6),
    ("qwen3", 200000, 2048, "on", "q4_0", None, 879.75, 0.0, 1230.15),
    ("qwen3", 65536, 1024, "on", "q4_0", None, 288.0, 0.0, 352.11),
    ("qwen3", 8192, 1024, "on", "f16", None, 128.0, 0.0, 240.04),
    ("qwen3", 8192, 256, "on", "f16", None, 128.0, 0.0, 60.01),
    ("qwen3", 8192, 512, "off", "f16", None, 128.0, 0.0, 580.01),
    ("qwen3", 32768, 512, "off", "f16", None, 512.0, 0.0, 2164.01),
    ("qwen3", 8192, 1024, "on", "f16", 1, 128.0, 0.0, 240.04),
    ("qwen3", 8192, 1024, "on", "f16", 2, 128.0, 0.0, 232.04),
    ("qwen3", 4096, 128, "on", "f16", None, 64.0, 0.0, 29.0),
    ("qwen3", 8192, 4096, "on", "f16", None, 128.0, 0.0, 960.14),
]  # fmt: skip


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, GgufLayout]:
    out = {}
    for arch in ("qwen3next", "qwen3moe", "qwen3"):
        path = tmp_path_factory.mktemp(arch) / f"{arch}.gguf"
        shape = replace(SHAPES[arch], n_layer=4)
        out[arch] = read_layout(write_shape_model(path, shape, RECIPES["UD-IQ2_XXS"])[0])
    return out


@pytest.mark.parametrize(("arch", "ctx", "ub", "fa", "ct", "np_", "kv", "rs", "compute"), MEASURED)
def test_each_term_matches_llama_server(
    layouts: dict[str, GgufLayout],
    arch: str,
    ctx: int,
    ub: int,
    fa: str,
    ct: str,
    np_: int | None,
    kv: float,
    rs: float,
    compute: float,
) -> None:
    layout = layouts[arch]
    cells = kv_cells(ctx, np_)
    plan = ContextPlan(cells, ct, ct, ub, slots(np_))
    context = context_bytes_by_layer(layout, plan)
    assert sum(k for k, _ in context) / MIB == pytest.approx(kv, abs=0.01)
    assert sum(r for _, r in context) / MIB == pytest.approx(rs, abs=0.01)
    c = compute_buffer(
        layout, cells, ub, n_batch=max(ub, 2048), flash_attn=fa == "on", n_seq_max=slots(np_)
    )
    # within 0.5 MiB from ubatch 512 up; small ubatches over-estimate by a few MiB at most
    tolerance = 0.5 if ub >= 512 else 0.04 * compute
    assert c.total_bytes / MIB == pytest.approx(compute, abs=tolerance)
    assert c.total_bytes / MIB >= compute - 0.5  # never under by more than rounding


def test_recurrent_state_of_qwen3_coder_next(layouts: dict[str, GgufLayout]) -> None:
    """2.09 MiB a layer and sequence; 36 layers x 4 slots = 301.5 MiB (the 48-layer server log)."""
    layout = layouts["qwen3next"]
    assert rs_layer_bytes(layout, 1) == 2_195_456
    assert 36 * rs_layer_bytes(layout, 4) / MIB == pytest.approx(301.5)
    # draft-MTP keeps n_draft rollback snapshots per sequence
    assert rs_layer_bytes(layout, 4, n_rs_seq=3) == 4 * rs_layer_bytes(layout, 4)


def test_outputs_follow_the_slots_not_the_ubatch(layouts: dict[str, GgufLayout]) -> None:
    layout = layouts["qwen3next"]
    server = compute_buffer(layout, kv_cells(8192), 1024)
    fit_params = compute_buffer(layout, kv_cells(8192), 1024, n_seq_max=1, n_outputs=1024)
    assert server.n_outputs == 4
    # llama-fit-params said 649 MiB: ours is a little over (the output's 6 * n_embd per token)
    assert 649 <= fit_params.total_bytes / MIB <= 649 * 1.02


def test_mtp_blocks_hold_no_cache(tmp_path: Path) -> None:
    shape = replace(SHAPES["qwen3next"], n_layer=4)
    plain = read_layout(write_shape_model(tmp_path / "a.gguf", shape, RECIPES["Q8_0"])[0])
    mtp = read_layout(write_shape_model(tmp_path / "b.gguf", shape, RECIPES["Q8_0"], mtp=True)[0])
    plan = ContextPlan(kv_cells(8192), "f16", "f16", 512, 4)
    assert context_bytes_by_layer(mtp, plan)[:4] == context_bytes_by_layer(plain, plan)
    assert context_bytes_by_layer(mtp, plan)[4] == (0, 0)


def test_draft_mtp_adds_the_mtp_cache_and_rollback_snapshots(tmp_path: Path) -> None:
    from coder_tui.core.tune.fit import FitRequest, advise

    shape = replace(SHAPES["qwen3next"], n_layer=4)
    mtp = read_layout(write_shape_model(tmp_path / "m.gguf", shape, RECIPES["Q8_0"], mtp=True)[0])
    req = FitRequest(vram_bytes=64 << 30, ctx=8192, ram_bandwidth_bytes_per_s=5e10)
    plain, draft = advise(mtp, req), advise(mtp, replace(req, mtp=True))
    full = next(
        o for o in plain.options if (o.n_gpu_layers, o.n_cpu_moe, o.cpu_parts) == (6, 0, ())
    )
    with_mtp = draft.find(6, 0)
    block = sum(t.n_bytes for t in mtp.tensors if mtp.is_mtp_tensor(t.name))
    assert with_mtp.weights_vram_bytes == full.weights_vram_bytes + block
    assert with_mtp.kv_vram_bytes == 2 * full.kv_vram_bytes  # one more attention layer's cache
    assert with_mtp.rs_vram_bytes == 4 * full.rs_vram_bytes  # 3 rollback snapshots per row
    assert any("MTP block(s) not loaded" in n for n in plain.notes)
