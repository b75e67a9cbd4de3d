"""Reading a llama-server's options from its --help text (real text from the bundled build)."""

from __future__ import annotations

from pathlib import Path

from test_cli import SEED_IQ2

from coder_tui.core.config.loader import Profile, ServerSettings
from coder_tui.core.server.argv import build_argv
from coder_tui.core.server.caps import parse_help

HELP = (Path(__file__).parent.parent / "fixtures" / "llama_server_help.txt").read_text()


def test_real_help_lists_long_and_short_spellings() -> None:
    caps = parse_help(HELP, "version: 11434 (abc)\nbuilt with GNU")
    for flag in (
        "--flash-attn",
        "-fa",
        "--cache-type-k",
        "-ctk",
        "--cont-batching",
        "-cb",
        "--n-cpu-moe",
        "-ncmoe",
        "--metrics",
        "--port",
        "--ubatch-size",
        "-ub",
    ):
        assert caps.has(flag), flag
    assert caps.flash_attn_takes_value
    assert caps.version == "version 11434 (abc)"


def test_old_style_help_has_bare_flash_attn() -> None:
    text = "-fa,   --flash-attn                     enable Flash Attention (default: disabled)\n"
    text += "--port PORT                             port to listen (default: 8080)\n"
    caps = parse_help(text, "")
    assert caps.has("--flash-attn") and not caps.flash_attn_takes_value
    assert not caps.has("--n-cpu-moe")


def test_seed_command_line_against_real_help() -> None:
    caps = parse_help(HELP, "version: 1")
    profile = Profile(
        name="iq2_xxs",
        model=Path("Qwen3-Coder-Next-UD-IQ2_XXS.gguf"),
        ctx=200000,
        n_gpu_layers=42,
        n_cpu_moe=10,
        batch=1024,
        ubatch=1024,
        cache_type_k="q4_0",
        cache_type_v="q4_0",
        flash_attn="on",
        cont_batching=True,
        jinja=True,
        threads=16,
    )
    argv = build_argv(profile, ServerSettings(), caps)
    # The seed's command line, as test_cli.py checks it through `profiles show --argv`.
    assert argv[1:] == [*SEED_IQ2, "--host", "127.0.0.1", "--metrics"]
