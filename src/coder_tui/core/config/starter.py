"""A first config: the shipped example, or profiles made from GGUF files found on this machine.

For a first run without a config file (``cli/first_run.py`` asks in the terminal, the TUI's
first-run screen asks in the app): where GGUF files usually are (``~/models``, the Hugging Face
hub cache, llama.cpp's download cache), a config with one profile per model found, and the
shipped ``config.example.toml``. Writing never replaces an existing file (coder-tui never rewrites
a user's config). UI-free; returns plain values.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import tomli_w

from coder_tui.core.atomic import write_text_atomic
from coder_tui.core.errors import UserError
from coder_tui.core.paths import CONFIG_ENV, resolve_config_path

MAX_FOUND = 20
"""At most this many GGUF files become profiles (the newest first)."""
_SPLIT_PART = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")


@dataclass(frozen=True)
class FoundModel:
    """A GGUF file found in a usual place."""

    path: Path
    size_bytes: int


def model_places(env: Mapping[str, str] | None = None, home: Path | None = None) -> list[Path]:
    """Where GGUF files usually are: ``~/models``, the Hugging Face hub cache (``$HF_HOME``,
    ``$HF_HUB_CACHE``) and llama.cpp's download cache (``$LLAMA_CACHE``)."""
    env = os.environ if env is None else env
    home = Path.home() if home is None else home
    places = [home / "models", home / "Models"]
    if env.get("HF_HUB_CACHE"):
        places.append(Path(env["HF_HUB_CACHE"]))
    hf_home = Path(env["HF_HOME"]) if env.get("HF_HOME") else home / ".cache" / "huggingface"
    places.append(hf_home / "hub")
    if env.get("LLAMA_CACHE"):
        places.append(Path(env["LLAMA_CACHE"]))
    places.append(home / ".cache" / "llama.cpp")
    places.append(home / "Library" / "Caches" / "llama.cpp")  # macOS
    unique: list[Path] = []
    for place in places:
        if place not in unique:
            unique.append(place)
    return unique


def find_models(places: Iterable[Path], limit: int = MAX_FOUND) -> list[FoundModel]:
    """GGUF model files under ``places`` (a split model by its first part; no ``mmproj`` or
    imatrix files), newest first, at most ``limit``."""
    found: dict[Path, FoundModel] = {}
    for place in places:
        if not place.is_dir():
            continue
        for path in place.rglob("*.gguf"):
            name = path.name.lower()
            if "mmproj" in name or "imatrix" in name:
                continue
            part = _SPLIT_PART.search(path.name)
            if part and int(part.group(1)) != 1:
                continue
            try:
                real = path.resolve()
                size = real.stat().st_size
            except OSError:
                continue
            found.setdefault(real, FoundModel(path, size))
    newest = sorted(found.values(), key=lambda m: _mtime(m.path), reverse=True)
    return newest[:limit]


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def profile_name(path: Path, taken: Iterable[str] = ()) -> str:
    """A profile name from a model file: ``Qwen3-Coder-UD-IQ2_XXS.gguf`` → ``qwen3_coder_ud_iq2_xxs``."""
    stem = _SPLIT_PART.sub("", path.name).removesuffix(".gguf")
    base = re.sub(r"[^a-z0-9]+", "_", stem.lower()).strip("_") or "model"
    name, n, used = base, 2, set(taken)
    while name in used:
        name, n = f"{base}_{n}", n + 1
    return name


def profiles_config(models: Iterable[FoundModel], port: int = 8084) -> str:
    """A config with one profile per model (the first is the default), as TOML text."""
    profiles: dict[str, dict[str, object]] = {}
    for model in models:
        profiles[profile_name(model.path, profiles)] = {"model": str(model.path), "jinja": True}
    if not profiles:
        raise UserError("no GGUF model files found to make profiles from")
    head = (
        "# Made by coder-tui from the GGUF files it found; edit freely (coder-tui never rewrites\n"
        "# it). Every key a profile takes: config.example.toml, or `coder-tui profiles show`.\n"
    )
    doc = {
        "default_profile": next(iter(profiles)),
        "server": {"host": "127.0.0.1", "port": port},
        "profiles": profiles,
    }
    return head + tomli_w.dumps(doc)


def example_config_text() -> str:
    """The shipped ``config.example.toml`` (in the wheel, else the checkout's)."""
    packaged = Path(str(resources.files("coder_tui"))) / "config.example.toml"
    checkout = Path(__file__).resolve().parents[4] / "config.example.toml"
    for path in (packaged, checkout):
        if path.is_file():
            return path.read_text(encoding="utf-8")
    raise UserError("config.example.toml is not installed with this coder-tui")


def write_new_config(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` (its folder made); never over an existing file."""
    if path.exists():
        raise UserError(f"{path} exists already: coder-tui does not overwrite a config")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)
    return path


@dataclass(frozen=True)
class FirstRunOffer:
    """What a first run without a config can do: where the config goes, and the models found."""

    config_path: Path
    places: tuple[Path, ...]
    models: tuple[FoundModel, ...]

    def lines(self) -> list[str]:
        """The three choices, as the terminal and the TUI say them."""
        where = ", ".join(_home(p) for p in self.places if p.is_dir()) or "none of " + ", ".join(
            _home(p) for p in self.places[:4]
        )
        found = (
            f"make profiles from the {len(self.models)} GGUF file(s) found in {where}"
            if self.models
            else f"make profiles from GGUF files: none found ({where})"
        )
        return [
            "try the demo: a tiny generated model, nothing to download (coder-tui demo)",
            f"write a starter config from config.example.toml to {_home(self.config_path)}, "
            "then edit its model paths",
            found,
        ]


def first_run_offer(config_path: Path) -> FirstRunOffer:
    """The offer for a first run whose config would be ``config_path``."""
    places = model_places()
    return FirstRunOffer(config_path, tuple(places), tuple(find_models(places)))


def _home(path: Path) -> str:
    home = str(Path.home())
    text = str(path)
    return "~" + text[len(home) :] if home != "/" and text.startswith(home) else text


def missing_config(offer: FirstRunOffer) -> UserError:
    """The error for a command that needs a config when there is none, with the ways to start."""
    models = (
        f"make profiles from the {len(offer.models)} GGUF file(s) found"
        if offer.models
        else "make profiles from GGUF files (none found in ~/models or the caches yet)"
    )
    return UserError(
        f"no config at {offer.config_path} yet. To start:\n"
        "  coder-tui demo            try a tiny generated model, nothing to download\n"
        "  coder-tui init --example  write a starter config there from config.example.toml\n"
        f"  coder-tui init --models   {models}\n"
        "  (or run coder-tui in a terminal to choose)"
    )


def missing(cli_value: str | None) -> FirstRunOffer | None:
    """The first-run offer when no config was named (``--config``, ``$CODER_TUI_CONFIG``) and
    the usual one does not exist yet, else ``None`` (a named file that is missing is a typo
    more likely than a first run: the loader says it cannot read it)."""
    if cli_value or os.environ.get(CONFIG_ENV):
        return None
    path = resolve_config_path(None)
    return None if path.exists() else first_run_offer(path)
