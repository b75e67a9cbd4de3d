"""Profiles to argv: the seed's command line, adaptation to older servers, diffs and the summary."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import MappingProxyType

import pytest

from coder_tui.core.config.loader import Config, Profile, ServerSettings, load_config, parse_config
from coder_tui.core.errors import UserError
from coder_tui.core.server.argv import (
    ProfileError,
    build_argv,
    check_profiles,
    diff_profiles,
    shell_quote,
)
from coder_tui.core.server.caps import MODERN_CAPS, ServerCaps

EXAMPLE = Path(__file__).parent.parent.parent / "config.example.toml"

# The seed's command line for IQ2_XXS (with -ub for its --ub), then what coder-tui always adds.
SEED_IQ2 = [
    "llama-server",
    "-m", "Qwen3-Coder-Next-UD-IQ2_XXS.gguf",
    "--port", "8084",
    "-c", "200000",
    "-ngl", "42",
    "--n-cpu-moe", "10",
    "-b", "1024", "-ub", "1024",
    "--cache-type-k", "q4_0",
    "--cache-type-v", "q4_0",
    "--flash-attn", "on",
    "--cont-batching",
    "--jinja",
    "-t", "16",
    "--host", "127.0.0.1",
    "--metrics",
]  # fmt: skip


def example() -> Config:
    # Parsed as if the file were ./config.toml, so model paths stay as the seed writes them.
    return parse_config(EXAMPLE.read_text(), Path("config.toml"), check_files=False)


def caps(*flags: str, fa_value: bool = True, version: str = "version: 1 (old)") -> ServerCaps:
    base = {"-m", "--port", "--host", "--metrics"}
    return ServerCaps(
        version=version, flags=frozenset(base | set(flags)), flash_attn_takes_value=fa_value
    )


def profile(**kw: object) -> Profile:
    return Profile(name="p", model=Path("m.gguf"), **kw)  # type: ignore[arg-type]


SERVER = ServerSettings()
MINIMAL = ["llama-server", "-m", "m.gguf", "--port", "8084", "--host", "127.0.0.1", "--metrics"]


# -- the seed -------------------------------------------------------------------------------------


def test_example_iq2_xxs_reproduces_the_seed_command_line() -> None:
    config = example()
    assert build_argv(config.profile("iq2_xxs"), config.server) == SEED_IQ2


def test_example_iq3_xxs_differs_only_by_model_ngl_and_cpu_moe() -> None:
    config = example()
    iq3 = build_argv(config.profile("iq3_xxs"), config.server)
    assert len(iq3) == len(SEED_IQ2)
    diffs = {
        (SEED_IQ2[i - 1], a, b)
        for i, (a, b) in enumerate(zip(SEED_IQ2, iq3, strict=True))
        if a != b
    }
    assert diffs == {
        ("-m", "Qwen3-Coder-Next-UD-IQ2_XXS.gguf", "Qwen3-Coder-Next-UD-IQ3_XXS.gguf"),
        ("-ngl", "42", "34"),
        ("--n-cpu-moe", "10", "18"),
    }


def test_loaded_example_passes_the_absolute_model_path() -> None:
    config = load_config(EXAMPLE, check_files=False)
    argv = build_argv(config.profile(), config.server, binary="/opt/llama/llama-server")
    assert argv[0] == "/opt/llama/llama-server"
    assert argv[1:3] == ["-m", str(EXAMPLE.parent.absolute() / "Qwen3-Coder-Next-UD-IQ2_XXS.gguf")]
    assert argv[3:] == SEED_IQ2[3:]


def test_unset_options_are_left_out() -> None:
    assert build_argv(profile(), SERVER) == MINIMAL


def test_host_port_and_extra_args() -> None:
    argv = build_argv(
        profile(extra_args=("--slots", "--alias", "coder")),
        ServerSettings(host="0.0.0.0", port=9000),
    )
    assert argv == [
        "llama-server", "-m", "m.gguf", "--port", "9000", "--host", "0.0.0.0",
        "--metrics", "--slots", "--alias", "coder",
    ]  # fmt: skip


def test_switches_off() -> None:
    argv = build_argv(
        profile(cont_batching=False, jinja=False, mmap=False, flash_attn="off"), SERVER
    )
    assert argv == [
        *MINIMAL[:5], "--flash-attn", "off", "--no-cont-batching", "--no-jinja", *MINIMAL[5:],
        "--no-mmap",
    ]  # fmt: skip


def test_mmap_true_adds_nothing() -> None:
    assert build_argv(profile(mmap=True), SERVER) == MINIMAL


# -- older servers --------------------------------------------------------------------------------


def test_bare_flash_attn_switch() -> None:
    old = caps("--flash-attn", "-fa", fa_value=False)
    assert build_argv(profile(flash_attn="on"), SERVER, old) == [
        *MINIMAL[:5],
        "--flash-attn",
        *MINIMAL[5:],
    ]
    assert build_argv(profile(flash_attn="off"), SERVER, old) == MINIMAL
    assert build_argv(profile(flash_attn="auto"), SERVER, old) == MINIMAL


def test_missing_n_cpu_moe_is_a_profile_error() -> None:
    old = caps("-ngl", version="version: 4000 (abcdef)")
    p = dataclasses.replace(profile(n_gpu_layers=42, n_cpu_moe=10), name="iq2_xxs")
    with pytest.raises(ProfileError) as info:
        build_argv(p, SERVER, old)
    assert str(info.value) == (
        "profile iq2_xxs: n_cpu_moe needs --n-cpu-moe, "
        "which llama-server version: 4000 (abcdef) does not have"
    )
    assert isinstance(info.value, UserError)


def test_every_missing_flag_is_reported() -> None:
    with pytest.raises(ProfileError) as info:
        build_argv(
            profile(ctx=4096, threads=8, jinja=True, flash_attn="on", mmap=False), SERVER, caps()
        )
    lines = str(info.value).splitlines()
    assert [line.split(": ")[1].split(" needs ")[0] for line in lines] == [
        "ctx", "flash_attn", "jinja", "threads", "mmap",
    ]  # fmt: skip
    assert "flash_attn needs --flash-attn" in lines[1]
    assert "mmap needs --no-mmap" in lines[4]


def test_no_mmap_versus_load_mode() -> None:
    p = profile(mmap=False)
    assert build_argv(p, SERVER, caps("--no-mmap", "--load-mode"))[-1:] == ["--no-mmap"]
    assert build_argv(p, SERVER, caps("--load-mode"))[-2:] == ["--load-mode", "none"]
    assert build_argv(p, SERVER, caps("-lm"))[-2:] == ["-lm", "none"]


def test_aliases_are_used_when_the_short_form_is_missing() -> None:
    server_caps = caps("--ctx-size", "--n-gpu-layers", "-ncmoe", "--threads", "-cb")
    argv = build_argv(
        profile(ctx=8, n_gpu_layers=1, n_cpu_moe=2, threads=3, cont_batching=True),
        SERVER,
        server_caps,
    )
    assert argv[5:-3] == [
        "--ctx-size",
        "8",
        "--n-gpu-layers",
        "1",
        "-ncmoe",
        "2",
        "-cb",
        "--threads",
        "3",
    ]


def test_off_switches_the_server_lacks_are_dropped() -> None:
    # Old servers had continuous batching off by default and no Jinja unless asked.
    assert build_argv(profile(cont_batching=False, jinja=False), SERVER, caps()) == MINIMAL


def test_modern_caps_is_the_default() -> None:
    p = profile(n_cpu_moe=3, flash_attn="auto")
    assert build_argv(p, SERVER) == build_argv(p, SERVER, MODERN_CAPS)


# -- helpers --------------------------------------------------------------------------------------


def test_shell_quote() -> None:
    argv = build_argv(dataclasses.replace(profile(), model=Path("/models/my model.gguf")), SERVER)
    assert shell_quote(argv).startswith("llama-server -m '/models/my model.gguf' --port 8084")


def test_diff_profiles() -> None:
    config = example()
    iq2, iq3 = config.profile("iq2_xxs"), config.profile("iq3_xxs")
    assert diff_profiles(iq2, iq3) == [
        (
            "model",
            Path("Qwen3-Coder-Next-UD-IQ2_XXS.gguf"),
            Path("Qwen3-Coder-Next-UD-IQ3_XXS.gguf"),
        ),
        ("n_gpu_layers", 42, 34),
        ("n_cpu_moe", 10, 18),
    ]
    assert diff_profiles(iq2, iq2) == []
    a = profile(env=MappingProxyType({"A": "1"}))
    b = profile(env={"A": "1"})
    assert diff_profiles(a, b) == []
    assert diff_profiles(a, profile(env={"A": "2"})) == [("env", {"A": "1"}, {"A": "2"})]


def test_check_profiles_summarises_each_profile(tmp_path: Path) -> None:
    (tmp_path / "Qwen3-Coder-Next-UD-IQ2_XXS.gguf").write_bytes(b"\0" * (3 * 2**20))
    config_file = tmp_path / "config.toml"
    config_file.write_text(EXAMPLE.read_text())
    config = load_config(config_file, check_files=False)
    lines = check_profiles(config)
    assert len(lines) == 2
    assert lines[0].startswith("* iq2_xxs  Qwen3-Coder-Next-UD-IQ2_XXS.gguf  3.0 MiB  ctx 200000")
    assert "ngl 42  n-cpu-moe 10  batch 1024/1024  kv q4_0/q4_0  fa on  threads 16" in lines[0]
    assert lines[1].startswith("  iq3_xxs  Qwen3-Coder-Next-UD-IQ3_XXS.gguf  MISSING")
    old = check_profiles(config, caps("-c", "-ngl", version="old"))
    assert "UNSUPPORTED: profile iq2_xxs: n_cpu_moe needs --n-cpu-moe" in old[0]


# -- override_tensor ------------------------------------------------------------------------------


def test_override_tensor_passes_one_ot_per_item_before_n_cpu_moe() -> None:
    p = profile(n_gpu_layers=99, override_tensor=(r"blk\.0\.=CUDA0", "exps=CPU"), n_cpu_moe=2)
    assert build_argv(p, SERVER)[5:-3] == [
        "-ngl", "99",
        "-ot", r"blk\.0\.=CUDA0", "-ot", "exps=CPU",
        "--n-cpu-moe", "2",
    ]  # fmt: skip
    assert build_argv(profile(override_tensor=()), SERVER) == MINIMAL


def test_override_tensor_on_servers_with_the_long_form_only_or_none() -> None:
    p = profile(override_tensor=("exps=CPU",))
    assert build_argv(p, SERVER, caps("--override-tensor"))[5:7] == [
        "--override-tensor",
        "exps=CPU",
    ]
    with pytest.raises(ProfileError) as info:
        build_argv(p, SERVER, caps(version="version: 3000 (old)"))
    assert str(info.value) == (
        "profile p: override_tensor needs -ot, which llama-server version: 3000 (old) does not have"
    )


def test_override_tensor_from_the_config_file_to_argv_summary_and_diff(tmp_path: Path) -> None:
    text = EXAMPLE.read_text().replace(
        "n_cpu_moe = 10\n", "n_cpu_moe = 10\noverride_tensor = ['blk\\.4[0-7]\\.ffn_up_exps=CPU']\n"
    )
    config = parse_config(text, tmp_path / "config.toml", check_files=False)
    iq2 = config.profile("iq2_xxs")
    assert iq2.override_tensor == (r"blk\.4[0-7]\.ffn_up_exps=CPU",)
    argv = build_argv(iq2, config.server)
    assert argv[argv.index("-ngl") + 2 : argv.index("--n-cpu-moe")] == [
        "-ot",
        r"blk\.4[0-7]\.ffn_up_exps=CPU",
    ]
    assert r"ngl 42  ot blk\.4[0-7]\.ffn_up_exps=CPU  n-cpu-moe 10" in check_profiles(config)[0]
    # iq3 inherits it: the diff between the two is unchanged
    assert config.profile("iq3_xxs").override_tensor == iq2.override_tensor
    plain = dataclasses.replace(iq2, override_tensor=())
    assert diff_profiles(plain, iq2) == [("override_tensor", (), iq2.override_tensor)]
