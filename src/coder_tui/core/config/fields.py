"""The config's value checks: one converter per kind of value, and the non-profile key tables.

Each converter takes the reader (for paths relative to the config file and to report a problem
with its line) and returns the converted value, or ``INVALID`` once it has reported why. The
``[profiles.NAME]`` keys and their llama-server-specific checks (cache types, flash attention,
``extra_args``, tensor overrides) are ``flags.py``'s table; the reading itself (tables,
``inherit``, cross-key checks) is ``loader.py``'s.
"""

from __future__ import annotations

import math
import re
import stat
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

from coder_tui.core.config.positions import KeyPath, show_value
from coder_tui.core.sanitize import sanitize_line, show_path


class Reader(Protocol):
    """What a converter needs from the reader in ``config.py``."""

    base: Path
    check_files: bool

    def bad(self, key: KeyPath, message: str) -> object: ...


INVALID = object()
"""A value that was present but wrong (already reported): blocks checks that depend on it."""
NOT_A_TABLE = ""
"""Stands in for the keys of a table that was not a table (no real key is ever stored as "")."""

Conv = Callable[[Reader, KeyPath, object], object]


def integer(desc: str, ok: Callable[[int], bool]) -> Conv:
    def conv(r: Reader, key: KeyPath, v: object) -> object:
        if isinstance(v, int) and not isinstance(v, bool) and ok(v):  # TOML true is not 1
            return v
        return r.bad(key, f"expected an integer {desc}, got {show_value(v)}")

    return conv


def _seconds(r: Reader, key: KeyPath, v: object) -> object:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0:
        return float(v)
    return r.bad(key, f"expected a number of seconds > 0, got {show_value(v)}")


def _number(desc: str, ok: Callable[[float], bool]) -> Conv:
    def conv(r: Reader, key: KeyPath, v: object) -> object:
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and ok(v):
            return float(v)
        return r.bad(key, f"expected a number {desc}, got {show_value(v)}")

    return conv


def text_value(r: Reader, key: KeyPath, v: object) -> object:
    if isinstance(v, str) and v.strip():
        return v
    return r.bad(key, f"expected a non-empty string, got {show_value(v)}")


def boolean(r: Reader, key: KeyPath, v: object) -> object:
    return v if isinstance(v, bool) else r.bad(key, f"expected true or false, got {show_value(v)}")


def _path(r: Reader, key: KeyPath, v: object) -> object:
    if not isinstance(v, str) or not v.strip() or "\0" in v:
        return r.bad(key, f"expected a path, got {show_value(v)}")
    try:
        p = Path(v).expanduser()
    except RuntimeError:  # "~" without a home directory
        return r.bad(key, f"cannot expand {show_value(v)}: no home directory")
    return p if p.is_absolute() else r.base / p


def model_file(r: Reader, key: KeyPath, v: object) -> object:
    p = _path(r, key, v)
    if not isinstance(p, Path) or not r.check_files:
        return p
    shown = show_path(p)
    try:
        if p.is_dir():
            return r.bad(key, f"expected a GGUF file, {shown} is a directory")
        if not p.exists():
            return r.bad(key, f"expected an existing GGUF file, {shown} does not exist")
        mode = p.stat().st_mode  # never opened here: a FIFO would block the reader
        if not stat.S_ISREG(mode):
            kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
            return r.bad(key, f"expected a GGUF file, {shown} is {kind}")
    except (OSError, ValueError) as exc:
        reason = sanitize_line(getattr(exc, "strerror", None) or str(exc)).lower()
        return r.bad(key, f"cannot check {shown}: {reason}")
    return p


def str_list(r: Reader, key: KeyPath, v: object) -> object:
    if not isinstance(v, list):
        return r.bad(key, f"expected an array of strings, got {show_value(v)}")
    for i, item in enumerate(v):
        if not isinstance(item, str):
            return r.bad(key, f"expected an array of strings, item {i + 1} is {show_value(item)}")
    return tuple(v)


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env_name(r: Reader, key: KeyPath, v: object) -> object:
    if isinstance(v, str) and _ENV_NAME.fullmatch(v):
        return v
    return r.bad(key, f"expected an environment variable name (like MY_KEY), got {show_value(v)}")


def env_table(r: Reader, key: KeyPath, v: object) -> object:
    if not isinstance(v, dict):
        return r.bad(key, f"expected a table of strings, got {show_value(v)}")
    ok = True
    for name, value in v.items():
        if not name or "=" in name or "\0" in name:
            r.bad((*key, name), "not a valid environment variable name")
            ok = False
        elif not isinstance(value, str) or "\0" in value:
            r.bad((*key, name), f"expected a string without NUL, got {show_value(value)}")
            ok = False
    return MappingProxyType(dict(v)) if ok else INVALID


SERVER_KEYS: dict[str, Conv] = {
    "binary": _path,
    "host": text_value,
    "port": integer("1-65535", lambda n: 1 <= n <= 65535),
    "ready_timeout_s": _seconds,
    "stop_grace_s": _seconds,
    "log_dir": _path,
    "allow_remote": boolean,
    "api_key_env": _env_name,
}


def _url(r: Reader, key: KeyPath, v: object) -> object:
    if isinstance(v, str) and v.startswith(("http://", "https://")) and len(v) > 8:
        return v.rstrip("/")
    return r.bad(key, f"expected an http(s) URL, got {show_value(v)}")


def _prompt_sets(r: Reader, key: KeyPath, v: object) -> object:
    if not isinstance(v, dict):
        return r.bad(key, f"expected a table of prompt lists, got {show_value(v)}")
    out: dict[str, tuple[str, ...]] = {}
    ok = True
    for category, prompts in v.items():
        if (
            not isinstance(prompts, list)
            or not prompts
            or not all(isinstance(p, str) and p.strip() for p in prompts)
        ):
            r.bad((*key, category), f"expected a list of prompt texts, got {show_value(prompts)}")
            ok = False
        else:
            out[category] = tuple(prompts)
    return MappingProxyType(out) if ok else INVALID


BENCH_KEYS: dict[str, Conv] = {"prompts": _prompt_sets}
REMOTE_KEYS: dict[str, Conv] = {
    "name": text_value,
    "url": _url,
    "api_key_env": _env_name,
    "exporter_url": _url,
}
CHAT_KEYS: dict[str, Conv] = {
    "system_prompt": text_value,
    "max_tokens": integer(">= 1", lambda n: n >= 1),
    "temperature": _number(">= 0", lambda x: x >= 0),
    "stall_timeout_s": _seconds,
    "busy_refresh_s": _number("of seconds >= 0", lambda x: x >= 0),
    "quiet_above_tps": _number("of tokens/s >= 0", lambda x: x >= 0),
    "api_key_env": _env_name,
}
