"""The CUDA compute buffer by placement kind, last-layer placements, and llama.cpp's own fit read
from a server log: against hand-computed bytes of the generated 4-layer qwen3moe (test_fit.py's
model) and the buffer figures llama-server logged on the H100 (docs/gpu-validation.md)."""

from __future__ import annotations

import dataclasses

import pytest

from coder_tui.core.demo.model import DemoSpec, write_f16_model
from coder_tui.core.gguf.layout import GgufLayout, read_layout
from coder_tui.core.gguf.memory import (
    GPU_GRAPH_EXTRA_PER_TOKEN,
    OFFLOAD_CPU_LAYERS_EXTRA,
    OFFLOAD_HEAD_EXTRA,
    ComputeEstimate,
    gpu_compute_bytes,
    placement_kind,
)
from coder_tui.core.metrics import moe
from coder_tui.core.tune.fit import FitRequest, advise
from coder_tui.core.tune.llama_fit import placement_from_fit_log
from coder_tui.core.tune.measured import vram_for_args

MIB = 1 << 20
SPEC = DemoSpec(
    name="fit", n_layer=4, n_embd=256, n_head=4, n_head_kv=2, head_dim=64,
    n_expert=4, n_expert_used=2, n_ff_exp=256,
)  # fmt: skip
EXPERTS = 3 * 256 * 256 * 4 * 2  # gate, up, down of 4 experts in F16 (test_fit.py's model)


def request(**kw: object) -> FitRequest:
    base: dict[str, object] = {
        "vram_bytes": 8 << 30,
        "ctx": 4096,
        "ram_bandwidth_bytes_per_s": 50e9,
        "vram_bandwidth_bytes_per_s": 1000e9,
        "margin_bytes": 0,
        "overhead_bytes": 0,
    }
    return FitRequest(**{**base, **kw})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> GgufLayout:
    path = tmp_path_factory.mktemp("fitgpu") / "fit.gguf"
    write_f16_model(path, SPEC)
    return read_layout(path)


def test_kinds_follow_where_the_ram_weights_are() -> None:
    gpu48 = set(range(48))
    assert placement_kind(48, gpu48, set()) == "gpu"
    assert placement_kind(48, gpu48, set(range(39, 48))) == "tail"  # llama.cpp's fit: 894 MiB
    assert placement_kind(48, gpu48, set(range(8))) == "head"  # --n-cpu-moe 8: 1070 MiB
    assert placement_kind(48, gpu48, set(range(48))) == "head"  # all experts in RAM: 1070
    assert placement_kind(48, gpu48, set(range(36, 48))) == "tail"  # a quarter of the layers
    assert placement_kind(48, gpu48, set(range(35, 48))) == "head"  # longer runs: not measured
    assert placement_kind(48, gpu48, {40, 41, 46, 47}) == "head"  # not one run to the end
    assert placement_kind(48, set(range(7, 48)), set(range(10))) == "cpu_layers"  # -ngl 42


def test_gpu_compute_reproduces_the_h100_buffers() -> None:
    """CPU graph 571.3 MiB at -ub 1024 (mask 391 + ffn 180.3); CUDA0 logged 894.3 / 1070.0 /
    1028.0 by kind for Qwen3-Coder-Next IQ2_XXS at -c 200000 q4_0 K/V."""
    c = ComputeEstimate(1024, 4, 391 * MIB, 0, 0, int(180.3 * MIB), 0, 0)
    assert c.total_bytes / MIB == pytest.approx(571.3, abs=0.05)
    logged = {"gpu": 894.29, "tail": 894.29, "head": 1070.01, "cpu_layers": 1027.98}
    for kind, mib in logged.items():
        assert gpu_compute_bytes(c, kind) / MIB == pytest.approx(mib, abs=1.0), kind
    # --no-op-offload: no weight copies, the graph's extra only
    assert gpu_compute_bytes(c, "head", op_offload=False) == gpu_compute_bytes(c, "gpu")
    half = dataclasses.replace(c, n_ubatch=512)
    assert gpu_compute_bytes(half, "gpu") - half.total_bytes == GPU_GRAPH_EXTRA_PER_TOKEN * 512


def test_tail_placements_are_llama_cpp_rules_and_cheaper(layout: GgufLayout) -> None:
    report = advise(layout, request())
    tails = [o for o in report.all_options if o.tail_start]
    assert {(o.tail_start, o.tail_end) for o in tails if not o.cpu_parts} == {
        (1, 4),
        (2, 4),
        (3, 4),
    }
    base = report.compute
    for o in tails:
        flags = o.flags()
        assert flags[:3] == ["-ngl", "5", "-ot"] and "--n-cpu-moe" not in flags
        p = moe.placement_from_args(layout, flags)
        t = moe.token_traffic(layout, p)
        assert (o.weights_vram_bytes, o.ram_bytes_per_token) == (
            t.vram_weight_bytes,
            t.ram_bytes_per_token,
        )
        first = o.tail_start - 1 if o.cpu_parts else o.tail_start
        assert set(p.cpu_expert_layers) == set(range(first, 4))
        kind = "tail" if first >= 3 else "head"  # a run of at most a quarter of 4 layers
        assert o.compute_bytes == gpu_compute_bytes(base, kind)
        # vram_for_args (what the GPU script predicts with) says the same for the same flags
        assert vram_for_args(layout, report.request, flags) == o.vram_bytes
    # the same experts in RAM cost less VRAM at the end than at the start (no offload copies)
    last = report.find(5, 0, (), 3)
    first = report.find(5, 1)
    assert last.weights_vram_bytes == first.weights_vram_bytes
    assert first.vram_bytes - last.vram_bytes == OFFLOAD_HEAD_EXTRA
    assert last.weights_ram_bytes == first.weights_ram_bytes
    assert last.gpu_expert_bytes == 3 * EXPERTS
    # a longer run to the end is counted like the first layers' (not measured as cheaper)
    assert report.find(5, 0, (), 2).compute_bytes == report.find(5, 2).compute_bytes


def test_llama_fit_params_estimates_replace_the_model(layout: GgufLayout) -> None:
    given = (("gpu", 900 * MIB), ("head", 1100 * MIB), ("tail", 901 * MIB))
    req = dataclasses.replace(request(), gpu_compute_source=given)
    report = advise(layout, req)
    assert report.find(5, 0).compute_bytes == 900 * MIB
    assert report.find(5, 1).compute_bytes == 1100 * MIB
    assert report.find(5, 0, (), 3).compute_bytes == 901 * MIB
    model = gpu_compute_bytes(report.compute, "cpu_layers")  # not given: the model
    assert (
        report.find(4, 0).compute_bytes
        == model
        == report.compute.total_bytes
        + (GPU_GRAPH_EXTRA_PER_TOKEN * report.compute.n_ubatch + OFFLOAD_CPU_LAYERS_EXTRA)
    )
    assert vram_for_args(layout, req, ["-ngl", "5", "--n-cpu-moe", "1"]) == (
        report.find(5, 1).vram_bytes
    )


def test_tail_options_can_be_turned_off(layout: GgufLayout) -> None:
    req: FitRequest = dataclasses.replace(request(), tail_layers=False)
    assert not [o for o in advise(layout, req).all_options if o.tail_start]


LOG = """\
common_params_fit_impl: set ngl_per_device_high[0].(n_layer, n_part)=(49, 10)
common_params_fit_impl: set ngl_per_device[0].(n_layer, n_part)=(49, 11)
common_params_fit_impl: set ngl_per_device[0].(n_layer, n_part, overflow_type)=(49, 11, UP)
common_params_fit_impl: set ngl_per_device[0].(n_layer, n_part, overflow_type)=(49, 11, GATE)
"""


def test_the_server_fit_placement_is_read_from_its_log() -> None:
    """The H100 run's llama-fit log: its last choice, layers 38-48 with 38's down only."""
    flags = placement_from_fit_log(LOG)
    assert flags[:3] == ["-ngl", "49", "-ot"]
    rules = flags[3].split(",")
    assert rules[0] == r"blk\.38\.ffn_down.*=CPU"
    assert rules[1] == r"blk\.39\.ffn_(up|down|gate_up|gate)_(ch|)exps=CPU"
    assert len(rules) == 11 and rules[-1].startswith(r"blk\.48\.")
    up = placement_from_fit_log(LOG.rsplit("\n", 2)[0])  # the UP choice before it
    assert up[3].split(",")[0] == r"blk\.38\.ffn_(gate|gate_up|down).*=CPU"
    plain = placement_from_fit_log(LOG.splitlines()[1])
    assert plain[3].split(",")[0] == r"blk\.38\.ffn_(up|down|gate_up|gate)_(ch|)exps=CPU"
    assert placement_from_fit_log("no fit here") == []
