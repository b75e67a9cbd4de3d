"""Invalid server settings are refused before anything is offered; the calibrated speed model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from coder_tui.core.demo.shape_model import RECIPES, SHAPES, write_shape_model
from coder_tui.core.errors import UserError
from coder_tui.core.gguf.layout import GgufLayout, read_layout
from coder_tui.core.tune.fit import FitRequest, advise
from coder_tui.core.tune.speed import Measured, Traffic, calibrate, roofline_tokens_per_s
from coder_tui.core.tune.valid import problems

MB = 10**6


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> GgufLayout:
    path = tmp_path_factory.mktemp("v") / "qn.gguf"
    return read_layout(write_shape_model(path, SHAPES["qwen3next-tiny"], RECIPES["Q8_0"])[0])


def req(**kw: object) -> FitRequest:
    base: dict[str, object] = {
        "vram_bytes": 8 << 30,
        "ctx": 4096,
        "ram_bandwidth_bytes_per_s": 5e10,
    }
    base.update(kw)
    return FitRequest(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("settings", "why"),
    [
        (
            {"cache_type_v": "q4_0", "flash_attn": False},
            "quantized V cache (q4_0) needs --flash-attn",
        ),
        ({"cache_type_v": "q8_0", "flash_attn": False}, "needs --flash-attn on"),
        ({"ubatch": 2048, "batch": 1024}, "-ub 2048 is larger than -b 1024"),
        ({"ubatch": 0}, "at least 1"),
        ({"ctx": 0}, "context size must be positive"),
        ({"cache_type_k": "q3_k"}, "unknown K cache type"),
    ],
)
def test_invalid_combinations_are_never_offered(
    layout: GgufLayout, settings: dict[str, object], why: str
) -> None:
    r = req(**settings)
    assert any(why in p for p in problems(layout, r))
    with pytest.raises(UserError, match="would not run"):
        advise(layout, r)


def test_valid_combinations_pass(layout: GgufLayout) -> None:
    for r in (
        req(),
        req(cache_type_k="q4_0", cache_type_v="q4_0"),  # quantized V with flash attention
        req(cache_type_k="q8_0", flash_attn=False),  # a quantized K alone needs no FA
        req(ubatch=1024, batch=1024),
    ):
        assert problems(layout, r) == []
        assert advise(layout, r).options


def test_heads_must_fit_the_cache_block(tmp_path: Path) -> None:
    shape = replace(SHAPES["qwen3-tiny"], head_dim=48, n_head=4, n_head_kv=2)  # 48 % 32 != 0
    plan_layout = read_layout(write_shape_model(tmp_path / "h.gguf", shape, RECIPES["F16"])[0])
    assert any("multiple of 32" in p for p in problems(plan_layout, req(cache_type_k="q8_0")))
    assert problems(plan_layout, req(cache_type_k="q8_0", flash_attn=False)) == []


def tps(fixed: float, per_split: float, ram_bw: float, vram_bw: float, t: Traffic) -> float:
    return 1 / (fixed + t.splits * per_split + t.ram_bytes / ram_bw + t.vram_bytes / vram_bw)


# Placements of a 48-layer MoE: RAM bytes grow with --n-cpu-moe, hand-overs with CPU layers.
PLACEMENTS = [Traffic(80 * MB, 1500 * MB, 17), Traffic(275 * MB, 1300 * MB, 22),
              Traffic(120 * MB, 1450 * MB, 21), Traffic(180 * MB, 1400 * MB, 25),
              Traffic(40 * MB, 1550 * MB, 9)]  # fmt: skip


def test_calibration_recovers_the_machine() -> None:
    truth = (8e-3, 0.05e-3, 27e9, 2.3e12)
    points = [Measured(f"p{i}", t, tps(*truth, t)) for i, t in enumerate(PLACEMENTS[:4])]
    model = calibrate(points, ram_copy_bandwidth=60e9, vram_bandwidth=3.35e12)
    assert set(model.fitted) == {"fixed", "per_split", "ram_bw"}
    predicted = model.tokens_per_s(PLACEMENTS[4])
    assert predicted == pytest.approx(tps(*truth, PLACEMENTS[4]), rel=0.02)
    for _label, measured, ours in model.errors():
        assert ours == pytest.approx(measured, rel=0.02)


def test_one_run_sets_the_fixed_cost_and_beats_the_roofline() -> None:
    truth = (9e-3, 0.0, 27e9, 2.3e12)
    one = [Measured("seed", PLACEMENTS[1], tps(*truth, PLACEMENTS[1]))]
    copy = 90e9  # the effective 27 GB/s is 0.3 of it, as on the H100 host (RAM_BW_PRIOR_SHARE)
    model = calibrate(one, ram_copy_bandwidth=copy, vram_bandwidth=3.35e12)
    assert model.fitted == ("fixed",) and model.fixed_s > 0
    assert model.tokens_per_s(PLACEMENTS[1]) == pytest.approx(one[0].tokens_per_s)
    for t in PLACEMENTS:
        real = tps(*truth, t)
        roof = roofline_tokens_per_s(t, copy, 3.35e12)
        assert roof is not None and roof > 2 * real  # the roofline is a ceiling, far off
        assert model.tokens_per_s(t) == pytest.approx(real, rel=0.15)


def test_runs_faster_than_the_priors_lower_the_ram_estimate() -> None:
    fast = [Measured("x", Traffic(100 * MB, 0, 0), 1000.0)]  # 100 GB/s from RAM
    model = calibrate(fast, ram_copy_bandwidth=20e9, vram_bandwidth=1e12)
    assert model.fixed_s == 0 and model.ram_bandwidth_bytes_per_s == pytest.approx(100e9)
