"""What ``coder-tui profiles check`` verifies on disk before any start, as file-line-key problems.

Owns ``binary_problem`` (the configured llama-server exists, is a regular executable file and
answers ``--help`` like a llama-server) and ``model_problems`` (each profile's model is a regular
file with a GGUF header that walks: magic, version, counts). Loading the config is ``config/``'s;
the header walk is ``gguf/header.py``'s; probing the binary's flags is ``caps.py``'s. A FIFO or a
device is refused from ``stat`` before anything opens it.
"""

from __future__ import annotations

from pathlib import Path

from coder_tui.core.config.positions import KeyLocator, KeyPath, render_key
from coder_tui.core.config.schema import Config
from coder_tui.core.errors import Problem, ServerError
from coder_tui.core.gguf.header import Corrupt, check_header
from coder_tui.core.sanitize import sanitize_line, show_path
from coder_tui.core.server import caps as caps_mod
from coder_tui.core.server.binary import BinaryNotFound, find_tool


class _Where:
    """Lines of keys in the config file (read again: a loaded ``Config`` keeps no positions)."""

    def __init__(self, config: Config) -> None:
        self.path = config.path or Path("config.toml")
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        self.locator = KeyLocator(text)

    def problem(self, key: KeyPath, message: str) -> Problem:
        return Problem(self.path, self.locator.line(key), render_key(key), message)


def binary_problem(
    config: Config, cache_dir: Path | None
) -> tuple[Problem | None, caps_mod.ServerCaps | None, Path | None]:
    """A problem with ``[server] binary`` (or the binary found), else its capabilities."""
    where = _Where(config)
    key = ("server", "binary")
    try:
        binary = find_tool("llama-server", config.server.binary)
    except BinaryNotFound as exc:
        if config.server.binary is None:
            return None, None, None  # nothing configured: the caller notes it, not an error
        return where.problem(key, sanitize_line(str(exc))), None, None
    try:
        return None, caps_mod.probe(binary, cache_dir), binary
    except ServerError as exc:
        return where.problem(key, sanitize_line(str(exc))), None, binary


def model_problems(config: Config) -> list[Problem]:
    """One problem per profile whose model is not a readable GGUF file (each file checked once)."""
    where = _Where(config)
    out: list[Problem] = []
    checked: dict[Path, str | None] = {}
    for name, profile in config.profiles.items():
        path = profile.model
        if path not in checked:
            checked[path] = model_problem(path)
        reason = checked[path]
        if reason is not None:
            out.append(where.problem(("profiles", name, "model"), reason))
    return out


def model_problem(path: Path) -> str | None:
    """Why ``path`` is not a readable GGUF model, or ``None`` when its header walks."""
    shown = show_path(path)
    try:
        check_header(path)
    except Corrupt as exc:
        return f"cannot use {shown}: {exc}"
    except OSError as exc:
        reason = sanitize_line(exc.strerror or str(exc)).lower()
        return f"{shown} is not a readable GGUF file: {reason}"
    except ValueError as exc:  # mmap of an empty or odd file
        return f"{shown} is not a readable GGUF file: {sanitize_line(str(exc))}"
    return None
