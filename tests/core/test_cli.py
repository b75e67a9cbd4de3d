"""The CLI as a user meets it: the seed's command lines, and one clear line per config mistake."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest

from coder_tui.__main__ import main

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLE = ROOT / "config.example.toml"
FIXTURES = sorted((ROOT / "tests" / "fixtures" / "config").glob("*.toml"))

SEED_IQ2 = [
    "-m",
    "Qwen3-Coder-Next-UD-IQ2_XXS.gguf",
    "--port",
    "8084",
    "-c",
    "200000",
    "-ngl",
    "42",
    "--n-cpu-moe",
    "10",
    "-b",
    "1024",
    "-ub",
    "1024",
    "--cache-type-k",
    "q4_0",
    "--cache-type-v",
    "q4_0",
    "--flash-attn",
    "on",
    "--cont-batching",
    "--jinja",
    "-t",
    "16",
]


def _argv(capsys: pytest.CaptureFixture[str], name: str) -> list[str]:
    assert main(["profiles", "show", name, "--argv", "--config", str(EXAMPLE)]) == 0
    argv = shlex.split(capsys.readouterr().out)
    argv[2] = Path(argv[2]).name  # the model path is resolved against the config's folder
    return argv


def test_profiles_show_reproduces_the_seed(capsys: pytest.CaptureFixture[str]) -> None:
    iq2 = _argv(capsys, "iq2_xxs")
    assert Path(iq2[0]).name == "llama-server"
    assert iq2[1 : 1 + len(SEED_IQ2)] == SEED_IQ2
    assert iq2[1 + len(SEED_IQ2) :] == ["--host", "127.0.0.1", "--metrics"]
    iq3 = _argv(capsys, "iq3_xxs")
    changed = {i for i, (a, b) in enumerate(zip(iq2, iq3, strict=True)) if a != b}
    assert {iq2[i - 1] for i in changed} == {"-m", "-ngl", "--n-cpu-moe"}
    assert iq3[iq3.index("-ngl") + 1] == "34" and iq3[iq3.index("--n-cpu-moe") + 1] == "18"
    assert iq3[2] == "Qwen3-Coder-Next-UD-IQ3_XXS.gguf"


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.stem for f in FIXTURES])
def test_config_mistakes_are_one_line_each_without_traceback(
    fixture: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "model.gguf").write_bytes(b"")
    (tmp_path / "models").mkdir()
    copy = tmp_path / fixture.name
    shutil.copyfile(fixture, copy)
    expected = []
    for raw in fixture.read_bytes().splitlines():
        line = raw.decode("ascii", "replace")
        if not line.startswith("# expect: "):
            break
        expected.append(
            "coder-tui: " + line.removeprefix("# expect: ").replace("{dir}", str(tmp_path))
        )
    assert main(["profiles", "check", "--config", str(copy)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines() == expected


def test_missing_config_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["profiles", "check", "--config", str(tmp_path / "nope.toml")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "nope.toml" in err[0]


def test_unknown_profile_names_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "show", "iq4", "--config", str(EXAMPLE)]) == 2
    err = capsys.readouterr().err
    assert "iq2_xxs" in err and "Traceback" not in err


def test_config_from_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CODER_TUI_CONFIG", str(EXAMPLE))
    assert main(["profiles", "show", "iq3_xxs"]) == 0
    assert 'inherit = "iq2_xxs"' in capsys.readouterr().out


def test_profiles_show_prints_toml_that_reads_back(capsys: pytest.CaptureFixture[str]) -> None:
    """``profiles show`` claims to print the profile's table: it is TOML (``true``, quoted
    paths), and reading it back gives the same profile."""
    import tomllib

    from coder_tui.core.config.loader import load_config

    assert main(["profiles", "show", "iq3_xxs", "--config", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "jinja = true" in out and "True" not in out
    table = tomllib.loads(out)["profiles"]["iq3_xxs"]
    want = load_config(EXAMPLE, check_files=False).profile("iq3_xxs")
    assert table["model"] == str(want.model) and table["jinja"] is True
    assert table["flash_attn"] == "on" and table["n_cpu_moe"] == want.n_cpu_moe


def _subparsers(parser: object, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    import argparse

    assert isinstance(parser, argparse.ArgumentParser)
    found: list[tuple[tuple[str, ...], object]] = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.extend(_subparsers(sub, (*path, name)))
    return found


def test_every_option_has_help_and_every_subcommand_a_description() -> None:
    import argparse

    from coder_tui.__main__ import _parser

    missing = []
    for path, parser in _subparsers(_parser()):
        assert isinstance(parser, argparse.ArgumentParser)
        if path and not parser.description:
            missing.append(f"{' '.join(path)}: no description")
        for action in parser._actions:
            if not isinstance(action, argparse._SubParsersAction) and not action.help:
                missing.append(f"{' '.join(path) or 'coder-tui'} {action.dest}: no help")
    assert missing == []
    for path, parser in _subparsers(_parser()):
        assert isinstance(parser, argparse.ArgumentParser)
        assert "the seed" not in parser.format_help(), path  # jargon: say what the table is


def test_a_subcommand_error_prints_that_subcommands_usage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "model.gguf", "--vram", "24", "lots"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: coder-tui fit ")
    assert "coder-tui fit: error: unrecognized arguments: lots" in err
    with pytest.raises(SystemExit):
        main(["profiles", "show", "a", "b"])
    assert capsys.readouterr().err.startswith("usage: coder-tui profiles show ")
