"""Placement, per-token traffic and roofline for generated GGUFs, against hand-computed bytes.

The model (see test_gguf_layout.write_moe_gguf): 4 layers, n_embd 256, 4 experts (2 used) of
n_ff 256, attention q 256 x 256, k and v 128 x 256, o 256 x 256; norms and router F32; token
embedding F16 (64 x 256); output Q8_0.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from test_gguf_layout import Q, nbytes, write_moe_gguf

from coder_tui.core.config.loader import Profile
from coder_tui.core.gguf.layout import GgufLayout, read_layout
from coder_tui.core.metrics import moe
from coder_tui.core.metrics.types import Bound, ServerPhase

EMBD_ROW = 256 * 2  # one F16 row of the token embedding
OUTPUT = nbytes(64 * 256, "Q8_0") + 256 * 4  # output matrix + output norm
ATTN = nbytes(256 * 256 + 2 * 128 * 256 + 256 * 256, "Q8_0")
NORMS_ROUTER = (256 + 128 + 128 + 256) * 4 + 4 * 256 * 4


def expert(quant: str) -> int:
    """One expert's gate + up + down slices: 3 x 256 x 256 values."""
    return nbytes(3 * 256 * 256, quant)


def dense() -> int:
    return ATTN + NORMS_ROUTER


def layer_token(quant: str) -> int:
    """Bytes one layer reads per token: all non-expert weights + 2 of 4 experts."""
    return dense() + 2 * expert(quant)


@pytest.fixture(scope="module", params=["Q8_0", "F16", "Q4_K", "IQ2_XXS"])
def model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    quant = request.param
    path = tmp_path_factory.mktemp(quant) / "m.gguf"
    return quant, read_layout(write_moe_gguf(path, experts=Q.__members__[quant]))


def test_all_on_gpu(model: tuple[str, GgufLayout]) -> None:
    quant, layout = model
    p = moe.placement(layout, 99)
    assert p.gpu_layers == (0, 1, 2, 3) and p.output_on_gpu and p.cpu_expert_layers == ()
    t = moe.token_traffic(layout, p)
    assert t.ram_bytes_per_token == EMBD_ROW and t.ram_expert_bytes_per_token == 0
    assert t.vram_bytes_per_token == 4 * layer_token(quant) + OUTPUT
    assert t.prompt_pcie_bytes_per_ubatch == 0  # only the embedding (GET_ROWS) is in RAM


@pytest.mark.parametrize("n_cpu_moe", [1, 2, 4])
def test_n_cpu_moe(model: tuple[str, GgufLayout], n_cpu_moe: int) -> None:
    quant, layout = model
    p = moe.placement(layout, 99, n_cpu_moe)
    assert p.cpu_expert_layers == tuple(range(n_cpu_moe))
    t = moe.token_traffic(layout, p)
    assert t.ram_expert_bytes_per_token == n_cpu_moe * 2 * expert(quant)
    assert t.ram_bytes_per_token == EMBD_ROW + n_cpu_moe * 2 * expert(quant)
    assert t.vram_bytes_per_token == 4 * dense() + (4 - n_cpu_moe) * 2 * expert(quant) + OUTPUT
    # prompt: all 4 experts of each CPU-MoE layer are copied per ubatch
    assert t.prompt_pcie_bytes_per_ubatch == n_cpu_moe * 4 * expert(quant)


@pytest.mark.parametrize(("ngl", "gpu_layers"), [(0, ()), (1, ()), (3, (2, 3)), (5, (0, 1, 2, 3))])
def test_ngl_counts_the_output_layer_first(
    model: tuple[str, GgufLayout], ngl: int, gpu_layers: tuple[int, ...]
) -> None:
    quant, layout = model
    p = moe.placement(layout, ngl)
    assert p.gpu_layers == gpu_layers
    assert p.output_on_gpu == (ngl >= 1)
    n_cpu = 4 - len(gpu_layers)
    assert p.cpu_expert_layers == tuple(range(n_cpu))
    t = moe.token_traffic(layout, p)
    out_ram = 0 if ngl >= 1 else OUTPUT
    assert t.ram_bytes_per_token == EMBD_ROW + n_cpu * layer_token(quant) + out_ram
    assert t.vram_bytes_per_token == len(gpu_layers) * layer_token(quant) + (OUTPUT - out_ram)
    assert t.ram_expert_bytes_per_token == n_cpu * 2 * expert(quant)
    assert t.prompt_pcie_bytes_per_ubatch == n_cpu * (dense() + 4 * expert(quant))


def test_no_gpu_puts_everything_in_ram(model: tuple[str, GgufLayout]) -> None:
    quant, layout = model
    p = moe.placement(layout, 99, 2, has_gpu=False)
    assert p.gpu_layers == () and not p.output_on_gpu and p.cpu_expert_layers == (0, 1, 2, 3)
    t = moe.token_traffic(layout, p)
    assert t.vram_bytes_per_token == 0 and t.prompt_pcie_bytes_per_ubatch == 0
    assert t.ram_bytes_per_token == EMBD_ROW + 4 * layer_token(quant) + OUTPUT


def test_override_tensor_patterns(model: tuple[str, GgufLayout]) -> None:
    quant, layout = model
    p = moe.placement(layout, 99, None, ("-ot", r"blk\.(1|3)\.ffn_.*_exps\.=CPU"))
    assert p.cpu_expert_layers == (1, 3)
    t = moe.token_traffic(layout, p)
    assert t.ram_bytes_per_token == EMBD_ROW + 2 * 2 * expert(quant)
    p2 = moe.placement(layout, 99, None, ("--override-tensor=blk\\.[0-2]\\.ffn_up_exps=CPU",))
    assert p2.cpu_expert_layers == (0, 1, 2)
    t2 = moe.token_traffic(layout, p2)
    assert t2.ram_expert_bytes_per_token == 3 * 2 * (expert(quant) // 3)  # up slices only
    assert moe.placement(layout, 99, None, ("--cpu-moe",)).cpu_expert_layers == (0, 1, 2, 3)
    # first match wins, as in llama.cpp: an earlier GPU override keeps layer 0's experts
    p3 = moe.placement(layout, 99, None, ("-ot", r"blk\.0\.=CUDA0,exps=CPU"))
    assert p3.cpu_expert_layers == (1, 2, 3)
    bad = moe.placement(layout, 99, None, ("-ot", "blk[=CPU"))
    assert bad.cpu_expert_layers == () and "not understood" in bad.notes[0]


def test_override_tensor_key_places_like_ot_in_extra_args(model: tuple[str, GgufLayout]) -> None:
    _, layout = model
    base = Profile(name="x", model=Path("m.gguf"), n_gpu_layers=99)
    pattern = r"blk\.(1|3)\.ffn_.*_exps\.=CPU"
    by_key = moe.placement_for_profile(
        layout, replace(base, override_tensor=(pattern,)), has_gpu=True
    )
    by_args = moe.placement_for_profile(
        layout, replace(base, extra_args=("-ot", pattern)), has_gpu=True
    )
    assert by_key == by_args and by_key.cpu_expert_layers == (1, 3)
    # Items are tried in order, then --n-cpu-moe's: a GPU override of layer 0 wins over both.
    keep0 = replace(base, override_tensor=(r"blk\.0\.=CUDA0", r"blk\.3\.=CPU"), n_cpu_moe=2)
    assert moe.placement_for_profile(layout, keep0, has_gpu=True).cpu_expert_layers == (1, 3)
    # A later -ngl in extra_args still wins, and without a GPU everything is in RAM.
    low = replace(base, override_tensor=(pattern,), extra_args=("-ngl", "3"))
    assert moe.placement_for_profile(layout, low, has_gpu=True).gpu_layers == (2, 3)
    cpu = moe.placement_for_profile(
        layout, replace(base, override_tensor=(pattern,)), has_gpu=False
    )
    assert cpu.cpu_expert_layers == (0, 1, 2, 3) and cpu.vram_tensors == frozenset()


def test_flags_in_extra_args_win(model: tuple[str, GgufLayout]) -> None:
    _, layout = model
    p = moe.placement(layout, 99, None, ("-ngl", "3", "--n-cpu-moe", "1", "--no-op-offload"))
    assert p.gpu_layers == (2, 3) and p.cpu_expert_layers == (0, 1) and not p.op_offload
    assert moe.token_traffic(layout, p).prompt_pcie_bytes_per_ubatch == 0
    unset = moe.placement(layout, None)
    assert unset.gpu_layers == (0, 1, 2, 3) and unset.notes


def test_profile_and_roofline(model: tuple[str, GgufLayout]) -> None:
    quant, layout = model
    profile = Profile(name="x", model=Path("m.gguf"), n_gpu_layers=99, n_cpu_moe=2)
    p = moe.placement_for_profile(layout, profile, has_gpu=True)
    t = moe.token_traffic(layout, p)
    ram = EMBD_ROW + 2 * 2 * expert(quant)
    vram = 4 * dense() + 2 * 2 * expert(quant) + OUTPUT
    ceiling = 1 / (ram / 50e9 + vram / 2e12)
    s = moe.moe_sample(
        p,
        t,
        ram_bandwidth_bytes_per_s=50e9,
        vram_bandwidth_bytes_per_s=2e12,
        generation_tokens_per_s=ceiling / 4,
        phase=ServerPhase.GENERATING,
    )
    assert s.decode_ceiling_tokens_per_s == pytest.approx(ceiling)
    assert s.efficiency == pytest.approx(0.25)
    assert s.ram_read_bytes_per_s == pytest.approx(ram * ceiling / 4)
    assert s.vram_read_bytes_per_s == pytest.approx(vram * ceiling / 4)
    assert s.bound is Bound.RAM_BANDWIDTH
    prompt = replace(s, bound=moe.moe_sample(
        p, t, ram_bandwidth_bytes_per_s=50e9, vram_bandwidth_bytes_per_s=2e12,
        generation_tokens_per_s=None, phase=ServerPhase.PROMPT).bound)  # fmt: skip
    assert prompt.bound is Bound.PCIE


def test_bounds_and_missing_bandwidth(model: tuple[str, GgufLayout]) -> None:
    _, layout = model
    p = moe.placement(layout, 99)
    t = moe.token_traffic(layout, p)

    def sample(phase: ServerPhase, vram_bw: float | None = 1e12):  # type: ignore[no-untyped-def]
        return moe.moe_sample(
            p,
            t,
            ram_bandwidth_bytes_per_s=20e9,
            vram_bandwidth_bytes_per_s=vram_bw,
            generation_tokens_per_s=10.0,
            phase=phase,
        )

    assert sample(ServerPhase.GENERATING).bound is Bound.VRAM_BANDWIDTH
    assert sample(ServerPhase.PROMPT).bound is Bound.GPU_COMPUTE
    idle = sample(ServerPhase.IDLE)
    assert idle.bound is Bound.NONE and idle.efficiency is None
    assert sample(ServerPhase.GENERATING, None).decode_ceiling_tokens_per_s is None


def test_tied_output_reads_the_whole_embedding(tmp_path: Path) -> None:
    layout = read_layout(write_moe_gguf(tmp_path / "t.gguf", tied=True))
    t = moe.token_traffic(layout, moe.placement(layout, 0, has_gpu=False))
    embd = 64 * 256 * 2
    assert t.ram_bytes_per_token == EMBD_ROW + embd + 256 * 4 + 4 * layer_token("Q8_0")


def test_measure_ram_bandwidth_is_quick_and_plausible() -> None:
    bw = moe.measure_ram_bandwidth(size_bytes=8 << 20, repeats=2)
    assert 1e8 < bw < 1e13


def test_short_prompt_is_not_pcie_bound() -> None:
    """Under 32 tokens a prompt is computed where the weights are (no op offload over PCIe)."""
    from coder_tui.core.metrics.moe import OP_OFFLOAD_MIN_BATCH, moe_sample
    from coder_tui.core.metrics.types import Bound, Placement, ServerPhase, TokenTraffic

    placement = Placement(
        n_layers=4,
        gpu_layers=(0, 1, 2, 3),
        output_on_gpu=True,
        cpu_expert_layers=(0,),
        has_gpu=True,
    )
    traffic = TokenTraffic(
        ram_bytes_per_token=1000,
        vram_bytes_per_token=10,
        ram_expert_bytes_per_token=900,
        ram_weight_bytes=10_000,
        vram_weight_bytes=100,
        prompt_pcie_bytes_per_ubatch=10_000,
    )

    def bound(tokens: float | None) -> Bound:
        return moe_sample(
            placement,
            traffic,
            ram_bandwidth_bytes_per_s=1e9,
            vram_bandwidth_bytes_per_s=1e12,
            generation_tokens_per_s=None,
            phase=ServerPhase.PROMPT,
            prompt_tokens_in_interval=tokens,
        ).bound

    assert bound(OP_OFFLOAD_MIN_BATCH - 1) is Bound.RAM_BANDWIDTH
    assert bound(OP_OFFLOAD_MIN_BATCH) is Bound.PCIE
    assert bound(None) is Bound.PCIE


def test_ram_bandwidth_uses_every_thread() -> None:
    from coder_tui.core.metrics.moe import measure_ram_bandwidth

    assert measure_ram_bandwidth(4 << 20, repeats=1, threads=2) > 0
