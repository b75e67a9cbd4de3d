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
import os
import re
import signal
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from coder_tui.core.config.flags import BY_KEY, PORT, SPELLINGS
from coder_tui.core.errors import ServerError
from coder_tui.core.sanitize import decode_output, sanitize_line, show_path

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
    for line in text.split("\n"):  # not splitlines: U+2028 in a version is shown, not a break
        if line.startswith("version:"):
            return sanitize_line("version " + line.split(":", 1)[1].strip())[:200]
    lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
    return sanitize_line(lines[0])[:200] if lines else "unknown version"


_OUTPUT_CAP_BYTES = 1 << 20
"""More than any real ``--help`` prints (about 40 KiB): the rest of a runaway output is unread."""


def _run(binary: Path, flag: str, timeout_s: float) -> str:
    """What ``binary flag`` printed (stdout and stderr), decoded tolerantly.

    The program runs in its own session so that, when it hangs, the whole process group (any
    child it started included) is killed, not just the program; its output goes to a temporary
    file so a runaway writer costs at most ``_OUTPUT_CAP_BYTES`` of memory.
    """
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.Popen(  # noqa: S603 (argv list, no shell; the configured binary)
                [str(binary), flag],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            reason = sanitize_line(exc.strerror or str(exc)).lower()
            raise ServerError(
                f"{show_path(binary)}: cannot run it to read its options: {reason}"
            ) from None
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise ServerError(
                f"{show_path(binary)}: {flag} did not finish within {timeout_s:g} s; "
                "is it a llama-server?"
            ) from None
        finally:
            _kill_group(proc)  # a child it left behind in its group goes too
        out.seek(0)
        return decode_output(out.read(_OUTPUT_CAP_BYTES))


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


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
    help_text = _run(binary, "--help", timeout_s)
    if PORT.spellings[0] not in help_text:
        last = (help_text.strip().splitlines() or ["no output"])[-1]
        if "\ufffd" in help_text:  # not text: quoting it would only show noise
            last = "its output is not text"
        raise ServerError(
            f"{show_path(binary)}: --help did not list llama-server options "
            f"({sanitize_line(last[:200])})"
        )
    version_text = _run(binary, "--version", timeout_s)
    caps = parse_help(help_text, version_text)
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
