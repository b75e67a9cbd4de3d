"""First run without a config: the choices said in the terminal, ``init``, and the first config
made from the shipped example or from GGUF files found in the usual places."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import tomllib

from coder_tui.__main__ import main
from coder_tui.core.config.loader import load_config
from coder_tui.core.config.starter import (
    example_config_text,
    find_models,
    model_places,
    profile_name,
    profiles_config,
)
from coder_tui.core.paths import app_paths


@pytest.fixture
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No config at the usual path, and a home whose ~/models holds two GGUF files."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("LLAMA_CACHE", raising=False)
    models = tmp_path / "models"
    (models / "sub").mkdir(parents=True)
    (models / "Qwen3-Coder-UD-IQ2_XXS.gguf").write_bytes(b"GGUF" + bytes(60))
    (models / "sub" / "big-00001-of-00002.gguf").write_bytes(b"GGUF")
    (models / "sub" / "big-00002-of-00002.gguf").write_bytes(b"GGUF")
    (models / "mmproj-f16.gguf").write_bytes(b"GGUF")
    path = app_paths().default_config_file
    assert not path.exists()
    yield path
    path.unlink(missing_ok=True)


def test_without_a_config_the_terminal_says_how_to_start(
    no_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It used to be only ``cannot read ~/.config/coder-tui/config.toml``."""
    assert main(["profiles", "check"]) == 2
    err = capsys.readouterr().err
    assert f"no config at {no_config} yet" in err
    assert "coder-tui demo" in err and "config.example.toml" in err
    assert "init --models   make profiles from the 2 GGUF file(s) found" in err
    assert "Traceback" not in err


def test_init_writes_profiles_from_the_models_found_and_never_overwrites(
    no_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {no_config} with 2 profile(s)" in out
    config = load_config(no_config)
    assert set(config.profiles) == {"qwen3_coder_ud_iq2_xxs", "big"}
    assert config.profile().model.name in {"Qwen3-Coder-UD-IQ2_XXS.gguf", "big-00001-of-00002.gguf"}
    assert main(["init", "--example"]) == 2
    assert "exists already" in capsys.readouterr().err


def test_init_example_writes_the_shipped_example(
    no_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init", "--example"]) == 0
    assert no_config.read_text() == example_config_text()
    assert "set the model paths" in capsys.readouterr().out


def test_model_places_follow_the_cache_variables(tmp_path: Path) -> None:
    env = {"HF_HOME": str(tmp_path / "hf"), "LLAMA_CACHE": str(tmp_path / "lc")}
    places = model_places(env, home=tmp_path)
    assert tmp_path / "models" in places
    assert tmp_path / "hf" / "hub" in places and tmp_path / "lc" in places
    assert tmp_path / ".cache" / "llama.cpp" in places


def test_found_models_skip_projectors_and_later_split_parts(tmp_path: Path) -> None:
    (tmp_path / "a-00001-of-00003.gguf").write_bytes(b"x")
    (tmp_path / "a-00002-of-00003.gguf").write_bytes(b"x")
    (tmp_path / "mmproj-model.gguf").write_bytes(b"x")
    (tmp_path / "imatrix.gguf").write_bytes(b"x")
    assert [m.path.name for m in find_models([tmp_path])] == ["a-00001-of-00003.gguf"]


def test_profile_names_are_table_keys_and_unique() -> None:
    assert profile_name(Path("Qwen3-Coder-UD-IQ2_XXS.gguf")) == "qwen3_coder_ud_iq2_xxs"
    assert profile_name(Path("m.gguf"), taken=["m"]) == "m_2"
    found = find_models([])
    assert found == []
    with pytest.raises(Exception, match="no GGUF"):
        profiles_config(found)


def test_profiles_config_is_toml_with_a_default(tmp_path: Path) -> None:
    model = tmp_path / 'we"ird.gguf'
    model.write_bytes(b"x")
    doc = tomllib.loads(profiles_config(find_models([tmp_path])))
    assert doc["default_profile"] == "we_ird"
    assert doc["profiles"]["we_ird"]["model"] == str(model)
