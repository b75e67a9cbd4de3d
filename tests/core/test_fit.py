"""The fit advisor against hand-computed bytes for a generated qwen3moe GGUF of known shape.

The model (``write_f16_model``): 4 layers, n_embd 256, 4 heads (2 KV heads) of 64, 4 experts
(2 used) of n_ff 256, vocabulary 1076, every matrix F16 and every norm and the router F32.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import coder_tui.__main__ as cli_main
from coder_tui.core.demo.model import DemoSpec, write_f16_model
from coder_tui.core.errors import UserError
from coder_tui.core.gguf.layout import GgufLayout, read_layout
from coder_tui.core.gguf.memory import (
    compute_buffer,
    gpu_compute_bytes,
    kv_bytes_per_cell,
    kv_cells,
    kv_layers,
)
from coder_tui.core.metrics import moe
from coder_tui.core.tune import llama_fit as fit_tools
from coder_tui.core.tune.fit import FitRequest, advise, parse_rate, parse_size

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SPEC = DemoSpec(
    name="fit", n_layer=4, n_embd=256, n_head=4, n_head_kv=2, head_dim=64,
    n_expert=4, n_expert_used=2, n_ff_exp=256,
)  # fmt: skip
VOCAB = 1076
ATTN = (256 * 256 + 256 * 128 + 256 * 128 + 256 * 256) * 2  # q, k, v, o in F16
NORMS = (256 + 256 + 64 + 64) * 4  # attn_norm, ffn_norm, q_norm, k_norm in F32
ROUTER = 256 * 4 * 4
EXPERTS = 3 * 256 * 256 * 4 * 2  # gate, up, down of 4 experts
OUTPUT = 256 * VOCAB * 2 + 256 * 4  # output matrix + output_norm
EMBD = 256 * VOCAB * 2
MIB = 1 << 20


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> GgufLayout:
    path = tmp_path_factory.mktemp("fit") / "fit.gguf"
    write_f16_model(path, SPEC)
    return read_layout(path)


def request(**kw: object) -> FitRequest:
    base: dict[str, object] = {
        "vram_bytes": 8 << 30,
        "ctx": 4096,
        "ram_bandwidth_bytes_per_s": 50e9,
        "vram_bandwidth_bytes_per_s": 1000e9,
        "margin_bytes": 0,
        "overhead_bytes": 0,
    }
    base.update(kw)
    return FitRequest(**base)  # type: ignore[arg-type]


def test_layer_bytes_are_what_the_test_assumes(layout: GgufLayout) -> None:
    assert layout.layers[0].non_expert_bytes == ATTN + NORMS + ROUTER
    assert layout.layers[0].expert_bytes == EXPERTS
    assert layout.output_bytes + layout.output_norm_bytes == OUTPUT
    assert layout.token_embd_bytes == EMBD and layout.vocab_size == VOCAB


@pytest.mark.parametrize(
    ("type_k", "type_v", "per_cell"),
    [
        ("f16", "f16", 2 * (128 * 2)),  # n_head_kv * head_dim = 128 values, 2 bytes each
        ("q8_0", "q8_0", 2 * (128 // 32 * 34)),
        ("q4_0", "q4_0", 2 * (128 // 32 * 18)),
        ("q8_0", "q4_0", 128 // 32 * 34 + 128 // 32 * 18),
        ("f32", "f16", 128 * 4 + 128 * 2),
    ],
)
def test_kv_bytes_per_cell(layout: GgufLayout, type_k: str, type_v: str, per_cell: int) -> None:
    assert kv_bytes_per_cell(layout, type_k, type_v) == per_cell
    assert kv_layers(layout) == (0, 1, 2, 3)  # not hybrid: every layer has attention


@pytest.mark.parametrize(
    ("n_ctx", "parallel", "total", "per_stream"),
    [
        (4096, None, 4096, 4096),
        (200000, None, 200192, 200192),  # GGML_PAD(200000, 256)
        (200000, 1, 200192, 200192),
        (4096, 3, 3 * 1536, 1536),  # GGML_PAD(4096 / 3 = 1365, 256) per sequence
        (1000, 4, 4 * 256, 256),
    ],
)
def test_kv_cells_follow_llama_context_padding(
    n_ctx: int, parallel: int | None, total: int, per_stream: int
) -> None:
    cells = kv_cells(n_ctx, parallel)
    assert (cells.total, cells.per_stream) == (total, per_stream)


def test_compute_buffer_formula(layout: GgufLayout) -> None:
    c = compute_buffer(layout, kv_cells(4096), 512)
    assert c.mask_bytes == 4096 * 512 * 2  # f16 mask with flash attention
    assert c.kq_bytes == 0
    # MoE without a shared expert: 2 * n_used * n_embd + n_used * n_ff + 3 * n_embd per token
    assert c.ffn_bytes == 512 * 4 * (2 * 2 * 256 + 2 * 256 + 3 * 256)
    # llama-server reserves one output per slot (4 with -np auto), not one per token
    assert c.n_outputs == 4
    assert c.output_bytes == 4 * (4 * VOCAB + 512 * 6 * 256)
    assert c.total_bytes == c.mask_bytes + max(c.ffn_bytes, c.output_bytes, c.attn_bytes)
    fit_params = compute_buffer(layout, kv_cells(4096), 512, n_outputs=512)
    assert fit_params.output_bytes == 4 * (512 * VOCAB + 512 * 6 * 256)
    no_fa = compute_buffer(layout, kv_cells(4096), 512, flash_attn=False)
    assert no_fa.mask_bytes == 4096 * 512 * 4 and no_fa.kq_bytes == 4 * 4096 * 512 * 4
    # the reserve graph uses min(n_ctx, n_ubatch, n_batch) tokens
    assert compute_buffer(layout, kv_cells(256), 2048).n_ubatch == 256
    assert compute_buffer(layout, kv_cells(8192), 4096).n_ubatch == 2048


def test_vram_of_every_placement_is_hand_computed(layout: GgufLayout) -> None:
    req = request(cache_type_k="q4_0", cache_type_v="q4_0", overhead_bytes=300 * MIB)
    report = advise(layout, req)
    kv_layer = 144 * 4096  # q4_0 K + V per cell x cells
    layer = ATTN + NORMS + ROUTER
    for o in report.options:
        if o.cpu_parts or o.tail_start:
            continue  # test_partial_placements_match_llama_cpp_rules, test_fit_gpu_compute.py
        start = min(max(5 - o.n_gpu_layers, 0), 4)
        cut = max(o.n_cpu_moe, start)
        gpu_layers = 4 - start
        kind = "cpu_layers" if start else ("head" if cut else "gpu")
        compute = gpu_compute_bytes(report.compute, kind)
        assert o.compute_bytes == compute
        weights = gpu_layers * layer + (4 - cut) * EXPERTS + (OUTPUT if o.n_gpu_layers else 0)
        assert o.weights_vram_bytes == weights
        assert o.kv_vram_bytes == gpu_layers * kv_layer
        assert o.vram_bytes == weights + gpu_layers * kv_layer + compute + 300 * MIB
    compute = gpu_compute_bytes(report.compute, "gpu")
    everything = next(o for o in report.options if (o.n_gpu_layers, o.n_cpu_moe) == (5, 0))
    assert everything.vram_bytes == 4 * (layer + EXPERTS + kv_layer) + OUTPUT + compute + 300 * MIB


@pytest.mark.parametrize(("ngl", "ncmoe"), [(5, 0), (5, 2), (4, 0), (3, 3), (2, 0), (1, 0), (0, 0)])
def test_agrees_with_metrics_moe(layout: GgufLayout, ngl: int, ncmoe: int) -> None:
    report = advise(layout, request())
    ours = next(o for o in report.options if (o.n_gpu_layers, o.n_cpu_moe) == (ngl, ncmoe))
    p = moe.placement(layout, ngl, ncmoe)
    t = moe.token_traffic(layout, p)
    assert ours.weights_vram_bytes == t.vram_weight_bytes
    assert ours.weights_ram_bytes == t.ram_weight_bytes
    assert ours.ram_bytes_per_token == t.ram_bytes_per_token
    assert ours.vram_bytes_per_token == t.vram_bytes_per_token
    assert ours.tokens_per_s == pytest.approx(moe.decode_ceiling(t, 50e9, 1000e9))


@pytest.mark.parametrize("parts", [("down",), ("gate",), ("gate", "down"), ("gate", "up")])
@pytest.mark.parametrize("cut", [0, 1, 3])
def test_partial_placements_match_llama_cpp_rules(
    layout: GgufLayout, cut: int, parts: tuple[str, ...]
) -> None:
    """A layer's experts split by ``-ot``: the bytes equal moe.placement's for the same flags."""
    report = advise(layout, request())
    o = report.find(5, cut, parts)
    assert o.flags()[:3] == ["-ngl", "5", "-ot"]
    assert o.flags()[3] == rf"blk\.{cut}\.ffn_({'|'.join(parts)})_exps=CPU"
    whole = report.find(5, cut)
    part_bytes = len(parts) * EXPERTS // 3
    assert o.weights_vram_bytes == whole.weights_vram_bytes - part_bytes
    extra = o.compute_bytes - whole.compute_bytes  # at cut 0: op offload's copies (head)
    assert extra == (
        gpu_compute_bytes(report.compute, "head") - whole.compute_bytes if cut == 0 else 0
    )
    assert o.vram_bytes == whole.vram_bytes - part_bytes + extra and o.fits
    t = moe.token_traffic(layout, moe.placement_from_args(layout, o.flags()))
    assert (o.weights_vram_bytes, o.weights_ram_bytes) == (t.vram_weight_bytes, t.ram_weight_bytes)
    assert (o.ram_bytes_per_token, o.vram_bytes_per_token) == (
        t.ram_bytes_per_token,
        t.vram_bytes_per_token,
    )


def test_ranking_prefers_gpu_experts_when_they_fit(layout: GgufLayout) -> None:
    roomy = advise(layout, request())
    assert roomy.best is not None and roomy.best.flags() == ["-ngl", "5"]
    full = roomy.best.vram_bytes
    # one expert layer short of everything: keep all attention on the GPU, move the first layer's
    # experts (op offload's copies, far larger than this model's experts, counted as nothing here)
    same = (("gpu", roomy.best.compute_bytes), ("head", roomy.best.compute_bytes))
    head = request(
        vram_bytes=full - 1, partial_layers=False, tail_layers=False, gpu_compute_source=same
    )
    whole_layers = advise(layout, head)
    assert whole_layers.best is not None
    assert whole_layers.best.flags() == ["-ngl", "5", "--n-cpu-moe", "1"]
    # as fine as llama.cpp's --fit: only the last layer's down experts leave the GPU (no copies)
    tight = advise(layout, request(vram_bytes=full - 1))
    assert tight.best is not None and tight.best.cpu_parts == ("down",)
    assert tight.best.flags() == ["-ngl", "5", "-ot", r"blk\.3\.ffn_(down)_exps=CPU"]
    assert tight.best.compute_bytes == roomy.best.compute_bytes
    assert tight.best.weights_vram_bytes > whole_layers.best.weights_vram_bytes
    for better, worse in zip(tight.options, tight.options[1:], strict=False):
        assert (better.tokens_per_s or 0) >= (worse.tokens_per_s or 0)
    same_ngl = [o for o in whole_layers.options if o.n_gpu_layers == 5]
    assert [o.n_cpu_moe for o in same_ngl] == sorted(o.n_cpu_moe for o in same_ngl)


def test_nothing_fits(layout: GgufLayout) -> None:
    report = advise(layout, request(vram_bytes=1 << 20, overhead_bytes=512 * MIB))
    assert report.best is None
    assert report.smallest.vram_bytes == min(o.vram_bytes for o in report.all_options)
    assert report.smallest.weights_vram_bytes < report.find(5, 0).weights_vram_bytes


def test_quantized_v_without_flash_attention_is_refused(layout: GgufLayout) -> None:
    with pytest.raises(UserError, match="needs --flash-attn on"):
        advise(layout, request(cache_type_v="q4_0", flash_attn=False))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("24GiB", 24 << 30),
        ("0.5GiB", 1 << 29),
        ("512MiB", 512 << 20),
        ("24G", 24 << 30),
        ("24GB", 24 * 10**9),
        ("1000", 1000),
        ("8 GiB", 8 << 30),
    ],
)
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


def test_parse_size_and_rate_errors() -> None:
    for bad in ("", "GiB", "12XB", "-1GiB", "1iB"):
        with pytest.raises(UserError):
            parse_size(bad)
    assert parse_rate("1008GB/s") == 1008e9
    assert parse_rate("50GB") == 50e9 and parse_rate("12000000000") == 12e9


# -- the CLI -------------------------------------------------------------------------------------
@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_main, "EXTRA_COMMANDS", ("fit", "tune"))


def test_fit_without_gpu_works_from_the_gguf(
    cli: None, layout: GgufLayout, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["fit", str(layout.path), "--vram", "8GiB", "--ram-bw", "50GB/s", "--no-fit-params"]
    assert cli_main.main(argv) == 0
    out = capsys.readouterr().out
    assert "card: 8.00 GiB (--vram)" in out
    assert "flags: -c 32768 -ngl 5 -ub 512" in out  # the model's own context by default


def test_fit_without_gpu_or_vram_plans_for_the_cpu(
    cli: None, layout: GgufLayout, capsys: pytest.CaptureFixture[str]
) -> None:
    """No GPU and no --vram: what the model needs in RAM on the CPU alone, and how to plan a card
    (it used to be only an error)."""
    from coder_tui.core.metrics import gpu

    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(gpu, "load_nvml", lambda: (_ for _ in ()).throw(ImportError()))
    try:
        assert cli_main.main(["fit", str(layout.path), "--no-fit-params"]) == 0
    finally:
        monkeypatch.undo()
    out = capsys.readouterr().out
    assert "no NVIDIA GPU" in out and "--vram SIZE" in out
    assert "on the CPU alone (no GPU, or -ngl 0)" in out and "flags: -c 32768 -ngl 0 " in out


def test_a_card_smaller_than_the_runtime_says_why_and_offers_the_cpu(
    cli: None, layout: GgufLayout, capsys: pytest.CaptureFixture[str]
) -> None:
    """``fit --vram 1GiB`` on a tiny model printed only "nothing fits"."""
    argv = ["fit", str(layout.path), "--vram", "1GiB", "--ram-bw", "50GB/s", "--no-fit-params"]
    assert cli_main.main(argv) == 1
    out = capsys.readouterr().out
    assert "is less than the CUDA runtime" in out and "no layer can go on it" in out
    assert "on the CPU alone" in out and "of RAM" in out and "-ngl 0" in out


def test_fit_runs_llama_fit_params_when_installed(
    cli: None,
    layout: GgufLayout,
    capsys: pytest.CaptureFixture[str],
    require_tool: Callable[[str], Path],
) -> None:
    require_tool("llama-fit-params")
    argv = ["fit", str(layout.path), "--vram", "8GiB", "--ram-bw", "50GB/s", "--ctx", "4096"]
    assert cli_main.main(argv) == 0
    out = capsys.readouterr().out
    assert "llama-fit-params (llama.cpp's own fit, same margin): -c 4096" in out
    assert "  ours for that placement: VRAM " in out  # its choice, predicted by us, beside ours
    assert "llama-fit-params estimate for our pick" in out


def test_write_profile_goes_to_the_state_file_atomically(
    cli: None,
    layout: GgufLayout,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from coder_tui.core.paths import app_paths

    paths = app_paths()
    config = paths.default_config_file
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("# mine, with comments\n[profiles.a]\nmodel = 'x.gguf'\n")
    before = (config.read_bytes(), os.stat(config).st_mtime_ns)
    state = paths.state_file
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text('last_profile = "a"\n[profiles.old]\nmodel = "/m.gguf"\n')
    written: list[Path] = []
    from coder_tui.core.config import app_state as state_mod

    real = state_mod.write_text_atomic
    monkeypatch.setattr(
        state_mod, "write_text_atomic", lambda p, t: (written.append(p), real(p, t))[1]
    )
    argv = ["fit", str(layout.path), "--vram", "8GiB", "--ram-bw", "50GB/s", "--no-fit-params"]
    argv += ["--ctx", "200000", "--cache-type", "q4_0", "--ubatch", "1024"]
    assert cli_main.main([*argv, "--write-profile", "fitted"]) == 0
    assert written == [state]
    doc = tomllib.loads(state.read_text())
    assert doc["last_profile"] == "a" and doc["profiles"]["old"] == {"model": "/m.gguf"}
    assert doc["profiles"]["fitted"] == {
        "model": str(layout.path.resolve()),
        "ctx": 200000,
        "n_gpu_layers": 5,
        "ubatch": 1024,
        "cache_type_k": "q4_0",
        "cache_type_v": "q4_0",
        "flash_attn": "on",
    }
    assert (config.read_bytes(), os.stat(config).st_mtime_ns) == before
    assert list(state.parent.glob(".state.toml.*")) == []  # no temp file left behind
    state.unlink()
    config.unlink()


def test_a_broken_state_file_is_not_clobbered(tmp_path: Path, layout: GgufLayout) -> None:
    state = tmp_path / "state.toml"
    state.write_text("not = [toml\n")
    with pytest.raises(UserError, match="not overwriting"):
        fit_tools.save_state_profile(state, "x", {"model": "/m"})
    assert state.read_text() == "not = [toml\n"


def test_llama_fit_params_args_and_the_saved_table_use_the_flag_table(
    tmp_path: Path, layout: GgufLayout
) -> None:
    req = request(ctx=8192, cache_type_k="q8_0", ubatch=1024, batch=512, parallel=2)
    assert fit_tools._common_args(tmp_path / "m.gguf", req) == [
        "-m", str(tmp_path / "m.gguf"), "-c", "8192",
        "--cache-type-k", "q8_0", "--cache-type-v", "f16",
        "-ub", "1024", "-b", "1024", "--flash-attn", "on", "--parallel", "2",
    ]  # fmt: skip
    with pytest.raises(UserError, match="-ub 1024 is larger than -b 512"):
        advise(layout, req)  # never offered: llama.cpp would run -ub 512
    req = dataclasses.replace(req, batch=1024, partial_layers=False)
    report = advise(layout, req)
    assert report.best is not None
    base = {"extra_args": ["-np", "4", "--mlock", "--parallel=3"], "override_tensor": ["x=CPU"]}
    table = fit_tools.profile_table(tmp_path / "m.gguf", req, report.best, base)
    # the old --parallel values go with their flags; the key the fit does not set stays
    assert table["extra_args"] == ["--mlock", "--parallel", "2"]
    assert table["override_tensor"] == ["x=CPU"]
