"""Where the shipped themes are: the repository's top-level ``themes/``, carried into the wheel as
``coder_tui/themes`` and found from an installed wheel as well as from this checkout."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from coder_tui.ui import themes as themes_mod
from coder_tui.ui.themes import builtin_themes_dir, load_themes

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent.parent


def test_the_checkout_uses_the_top_level_folder() -> None:
    assert builtin_themes_dir() == ROOT / "themes"
    assert not (ROOT / "src" / "coder_tui" / "themes").exists()
    assert len(list((ROOT / "themes").glob("*.toml"))) >= 4


def test_the_wheel_carries_them_as_package_data() -> None:
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]
    assert build["targets"]["wheel"]["force-include"]["themes"] == "coder_tui/themes"


def test_an_installed_wheel_finds_its_packaged_themes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "site-packages" / "coder_tui"
    shutil.copytree(ROOT / "themes", package / "themes")
    (package / "themes" / "amber.toml").unlink()  # tell the copy from the checkout's folder
    monkeypatch.setattr(themes_mod.resources, "files", lambda name: package)
    assert builtin_themes_dir() == package / "themes"
    loaded, problems = load_themes(builtin_themes_dir())
    assert problems == [] and "amber" not in {t.name for t in loaded}
    assert "coder-dark" in {t.name for t in loaded}
