"""The memory model term by term against a real llama-server's buffer log and llama-fit-params.

Shape-only tiny models of each kind (qwen3next: hybrid with recurrent state, with an MTP block,
split in three parts; qwen3moe; dense qwen3) are loaded by llama-server (``-lv 4``, CPU) and sized
by ``llama-fit-params --fit-print on``. KV and recurrent state must match to the byte the log
shows; the compute buffer within 2 % (or 2.5 MiB: in graphs this small, intermediates of a
fixed size weigh more; at real widths ``tests/core/test_memory.py`` holds it to 0.5 MiB).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from coder_tui.core.demo.shape_model import RECIPES, SHAPES, write_shape_model
from coder_tui.core.gguf.layout import GgufLayout, read_layout
from coder_tui.core.gguf.memory import (
    ContextPlan,
    compute_buffer,
    context_bytes_by_layer,
    kv_cells,
    slots,
)
from coder_tui.core.tune.llama_buffers import server_buffers
from coder_tui.core.tune.llama_fit import parse_estimate

MIB = 1 << 20
MODELS = {
    "qwen3next": ("qwen3next-tiny", {}),
    "qwen3next-mtp": ("qwen3next-tiny", {"mtp": True}),
    "qwen3next-split": ("qwen3next-tiny", {"split": 3}),
    "qwen3moe": ("qwen3moe-tiny", {}),
    "qwen3-dense": ("qwen3-tiny", {}),
}
SETTINGS = [  # -c, -ub, -fa, K type, V type, -np
    (4096, 512, "on", "f16", "f16", None),
    (16384, 256, "on", "q4_0", "q4_0", None),
    (8192, 512, "off", "q8_0", "f16", None),
    (8192, 1024, "on", "q8_0", "q8_0", 2),
]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, GgufLayout]:
    root = tmp_path_factory.mktemp("shapes")
    out = {}
    for key, (shape, kw) in MODELS.items():
        paths = write_shape_model(root / f"{key}.gguf", SHAPES[shape], RECIPES["Q8_0"], **kw)
        out[key] = read_layout(paths[0])
    return out


def _args(ctx: int, ub: int, fa: str, tk: str, tv: str, np_: int | None) -> list[str]:
    args = ["-c", str(ctx), "-ub", str(ub), "-fa", fa, "-ctk", tk, "-ctv", tv, "--no-repack"]
    return [*args, "-t", "2"] + (["-np", str(np_)] if np_ else [])


def _close(ours_mib: float, theirs_mib: float) -> bool:
    return abs(ours_mib - theirs_mib) <= max(0.02 * theirs_mib, 2.5)


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: "-".join(map(str, s)))
@pytest.mark.parametrize("key", list(MODELS))
def test_against_llama_server_buffer_log(
    require_tool: Callable[[str], Path],
    models: dict[str, GgufLayout],
    key: str,
    setting: tuple[int, int, str, str, str, int | None],
) -> None:
    server = require_tool("llama-server")
    layout = models[key]
    ctx, ub, fa, tk, tv, np_ = setting
    got = server_buffers(server, layout.path, _args(*setting), timeout_s=60)
    assert got.ok, got.log[-2000:]
    cpu = got.buffers.device("CPU")
    cells = kv_cells(ctx, np_)
    context = context_bytes_by_layer(layout, ContextPlan(cells, tk, tv, ub, slots(np_)))
    assert sum(k for k, _ in context) / MIB == pytest.approx(cpu["KV"], abs=0.01)
    assert sum(r for _, r in context) / MIB == pytest.approx(cpu["RS"], abs=0.01)
    c = compute_buffer(layout, cells, ub, flash_attn=fa == "on", n_seq_max=slots(np_))
    assert _close(c.total_bytes / MIB, cpu["compute"]), (c, cpu)
    # the model's tensors, every part of a split file (an MTP block's are mapped, not loaded)
    mapped = got.buffers.get("CPU_Mapped", "model")
    assert mapped == pytest.approx(sum(t.n_bytes for t in layout.tensors) / MIB, abs=0.02)


@pytest.mark.parametrize("key", list(MODELS))
def test_against_llama_fit_params(
    require_tool: Callable[[str], Path], models: dict[str, GgufLayout], key: str
) -> None:
    import subprocess

    tool = require_tool("llama-fit-params")
    layout = models[key]
    ctx, ub = 65536, 2048
    argv = [str(tool), "-m", str(layout.path), *_args(ctx, ub, "on", "q8_0", "q8_0", None)]
    out = subprocess.run([*argv, "--fit-print", "on"], capture_output=True, text=True, timeout=60)
    (host,) = parse_estimate(out.stdout)
    loaded = sum(t.n_bytes for t in layout.tensors if not layout.is_mtp_tensor(t.name))
    assert host.model_mib == loaded // MIB  # MTP tensors are skipped at load
    cells = kv_cells(ctx)
    context = context_bytes_by_layer(layout, ContextPlan(cells, "q8_0", "q8_0", ub, 1))
    assert host.context_mib == sum(k + r for k, r in context) // MIB
    # llama-fit-params reserves an output row per token of the ubatch, one sequence
    c = compute_buffer(layout, cells, ub, n_seq_max=1, n_outputs=ub)
    assert _close(c.total_bytes / MIB, host.compute_mib), (c, host)
