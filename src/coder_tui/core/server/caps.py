"""What an installed llama-server understands, read once from ``--help`` and ``--version``.

Flag forms changed across llama.cpp versions (``--flash-attn`` was a bare switch before it took
``on|off|auto``; ``--n-cpu-moe`` is recent; ``--no-mmap`` gave way to ``--load-mode``). Which
spellings and forms a profile key may use is the profile-flag table's (``config/flags.py``), which
turns profiles into argv against these capabilities; this module only reads them. Results are
cached per binary (path, size, mtime) in memory and in a small JSON file under the cache dir.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from coder_tui.core.config.flags import BY_KEY, PORT, SPELLINGS
from coder_tui.core.errors import ServerError

_FLAG_RE = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")
_FLASH_ATTN = BY_KEY["flash_attn"]


@dataclass(frozen=True)
class ServerCaps:
    """The flags one llama-server binary accepts, and its version line."""

    version: str
    flags: frozenset[str]
    flash_attn_takes_value: bool

    def has(self, flag: str) -> bool:
        return flag in self.flags

    def takes_value(self, flag: str) -> bool:
        """Whether ``flag`` takes a value here (only ``--flash-attn`` was once a bare switch)."""
        return self.flash_attn_takes_value or flag not in _FLASH_ATTN.spellings


# A server that accepts every spelling of the profile-flag table, the preferred one first; used
# when no binary is at hand (``profiles show``).
MODERN_CAPS = ServerCaps(
    version="(no binary inspected: assuming a current llama-server)",
    flags=SPELLINGS,
    flash_attn_takes_value=True,
)


def parse_help(help_text: str, version_text: str) -> ServerCaps:
    """Capabilities from the text of ``llama-server --help`` and ``--version``."""
    flags: set[str] = set()
    fa_value = False
    for line in help_text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("-"):
            continue
        # The option column ends at the first run of two spaces not followed by another flag
        # (aliases are padded too: "-fa,   --flash-attn [on|off|auto]    set Flash Attention").
        head = re.split(r"\s{2,}(?![\s-])", stripped, maxsplit=1)[0]
        found = _FLAG_RE.findall(head)
        flags.update(found)
        if _FLASH_ATTN.spellings[0] in found and re.search(r"\[?on\|off\|auto\]?|FA", head):
            fa_value = True
    version = _version_line(version_text)
    return ServerCaps(version=version, flags=frozenset(flags), flash_attn_takes_value=fa_value)


def _version_line(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("version:"):
            return "version " + line.split(":", 1)[1].strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0] if lines else "unknown version"


_memo: dict[tuple[str, int, int], ServerCaps] = {}
# Bump when parse_help changes, so a cache written by an older parser is not trusted.
_PARSER_VERSION = 2


def probe(binary: Path, cache_dir: Path | None = None, timeout_s: float = 30.0) -> ServerCaps:
    """Run ``binary --help`` and ``--version`` once per binary build and return what it accepts."""
    st = binary.stat()
    key = (f"{binary.resolve()}@{_PARSER_VERSION}", st.st_size, int(st.st_mtime))
    if key in _memo:
        return _memo[key]
    cache_file = cache_dir / "server-caps.json" if cache_dir else None
    cached = _read_cache(cache_file, key)
    if cached is not None:
        _memo[key] = cached
        return cached
    try:
        help_out = subprocess.run(  # noqa: S603 (argv list, no shell; the configured binary)
            [str(binary), "--help"], capture_output=True, text=True, timeout=timeout_s, check=False
        )
        ver_out = subprocess.run(  # noqa: S603 (argv list, no shell; the configured binary)
            [str(binary), "--version"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServerError(f"{binary}: cannot run it to read its options: {exc}") from None
    help_text = help_out.stdout + help_out.stderr
    if PORT.spellings[0] not in help_text:
        last = (help_out.stderr.strip().splitlines() or ["no output"])[-1]
        raise ServerError(f"{binary}: --help did not list llama-server options ({last})")
    caps = parse_help(help_text, ver_out.stdout + ver_out.stderr)
    _memo[key] = caps
    _write_cache(cache_file, key, caps)
    return caps


def _read_cache(path: Path | None, key: tuple[str, int, int]) -> ServerCaps | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
        entry = data.get("|".join(map(str, key)))
        if not entry:
            return None
        return ServerCaps(
            version=str(entry["version"]),
            flags=frozenset(entry["flags"]),
            flash_attn_takes_value=bool(entry["flash_attn_takes_value"]),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _write_cache(path: Path | None, key: tuple[str, int, int], caps: ServerCaps) -> None:
    if path is None:
        return
    from coder_tui.core.atomic import write_text_atomic

    try:
        data = json.loads(path.read_text()) if path.exists() else {}
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    entry = asdict(caps)
    entry["flags"] = sorted(caps.flags)
    data["|".join(map(str, key))] = entry
    with contextlib.suppress(OSError):  # a cache that cannot be written only costs a re-probe
        write_text_atomic(path, json.dumps(data, indent=1))
