"""Themes: the shipped ``themes/*.toml`` plus the user's own, loaded into Textual themes.

A theme file names its colours (primary, secondary, accent, warning, error, success, foreground,
background, surface, panel) and whether it is dark. A broken file is reported (file, line, key)
and skipped; it never stops the app. The shipped themes live in the repository's top-level
``themes/``; the wheel carries them as ``coder_tui/themes`` (``pyproject.toml``, hatchling's
``force-include``), and ``builtin_themes_dir`` finds them either way.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from textual.color import Color, ColorParseError
from textual.theme import Theme

from coder_tui.core.config.positions import KeyLocator
from coder_tui.core.errors import Problem

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

DEFAULT_THEME = "coder-dark"
COLOURS = (
    "primary",
    "secondary",
    "accent",
    "warning",
    "error",
    "success",
    "foreground",
    "background",
    "surface",
    "panel",
)
_KEYS = ("name", "dark", *COLOURS)


def builtin_themes_dir() -> Path:
    """Where the shipped themes are: ``coder_tui/themes`` in an installed wheel, else the
    checkout's top-level ``themes/`` (an editable install or a source tree: the package folder
    there has no themes of its own)."""
    packaged = Path(str(resources.files("coder_tui"))) / "themes"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "themes"


def load_theme_file(path: Path) -> tuple[Theme | None, list[Problem]]:
    """One theme, or the problems that stop it (one per bad key)."""
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(path, None, None, f"cannot read: {exc}")]
    except tomllib.TOMLDecodeError as exc:
        return None, [Problem(path, getattr(exc, "lineno", None), None, f"invalid TOML: {exc}")]
    where = KeyLocator(text)
    problems: list[Problem] = []
    for key in data:
        if key not in _KEYS:
            problems.append(Problem(path, where.line((key,)), key, "unknown key"))
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(Problem(path, where.line(("name",)), "name", "expected a theme name"))
    dark = data.get("dark", True)
    if not isinstance(dark, bool):
        problems.append(Problem(path, where.line(("dark",)), "dark", "expected true or false"))
    colours: dict[str, str] = {}
    for key in COLOURS:
        value = data.get(key)
        if value is None:
            if key == "primary":
                problems.append(Problem(path, None, key, "missing (every theme needs primary)"))
            continue
        try:
            if not isinstance(value, str):
                raise TypeError(value)
            Color.parse(value)
        except (ColorParseError, TypeError, ValueError, AttributeError):
            problems.append(Problem(path, where.line((key,)), key, f"not a colour: {value!r}"))
            continue
        colours[key] = str(value)
    if problems:
        return None, problems
    return (
        Theme(
            name=str(name),
            dark=bool(dark),
            primary=colours["primary"],
            secondary=colours.get("secondary"),
            accent=colours.get("accent"),
            warning=colours.get("warning"),
            error=colours.get("error"),
            success=colours.get("success"),
            foreground=colours.get("foreground"),
            background=colours.get("background"),
            surface=colours.get("surface"),
            panel=colours.get("panel"),
        ),
        [],
    )


def load_themes(*dirs: Path) -> tuple[list[Theme], list[Problem]]:
    """Every ``*.toml`` theme in ``dirs`` (later directories win on equal names)."""
    themes: dict[str, Theme] = {}
    problems: list[Problem] = []
    for directory in dirs:
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.toml")):
            theme, bad = load_theme_file(path)
            problems += bad
            if theme is not None:
                themes[theme.name] = theme
    return list(themes.values()), problems
