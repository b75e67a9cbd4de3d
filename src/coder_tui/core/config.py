"""The config file: TOML read with tomllib into frozen dataclasses, validated all at once.

Owns reading, ``inherit`` resolution and every validation message; the schema itself (and the
field docs) lives in ``config_schema.py`` and is re-exported here. Turning a profile into a
command line belongs to ``profiles.py``; finding the file belongs to ``paths.py``.
"""

from __future__ import annotations

import difflib
import math
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType

from coder_tui.core.config_schema import (
    BenchSettings,
    ChatSettings,
    Config,
    FlashAttn,
    Profile,
    Remote,
    ServerSettings,
)
from coder_tui.core.errors import ConfigError, Problem
from coder_tui.core.security import is_loopback
from coder_tui.core.tomlpos import (
    KeyLocator,
    KeyPath,
    decode_error_position,
    render_key,
    show_value,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, no-redef, unused-ignore]

# -- loading -------------------------------------------------------------------------------------

CACHE_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")
"""KV cache types llama-server accepts for --cache-type-k / --cache-type-v."""
FLASH_ATTN_VALUES = ("on", "off", "auto")
TOP_KEYS = ("default_profile", "server", "chat", "profiles", "remotes", "bench")

__all__ = [
    "CACHE_TYPES",
    "ChatSettings",
    "Config",
    "FlashAttn",
    "Profile",
    "Remote",
    "ServerSettings",
    "load_config",
    "parse_config",
]


def load_config(path: Path, *, check_files: bool = True) -> Config:
    """Read and validate the config file at ``path``; every problem is in one ``ConfigError``.

    With ``check_files`` false, model files are not required to exist (``profiles show`` on an
    example config).
    """
    path = path.expanduser()
    try:
        data = path.read_bytes()
    except OSError as exc:  # missing, unreadable, a directory: strerror says which
        reason = (exc.strerror or str(exc)).lower()
        raise ConfigError([Problem(path, None, None, f"cannot read {path}: {reason}")]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        message = (
            f"not valid UTF-8: byte 0x{data[exc.start]:02x} at column {exc.start - line_start + 1}"
        )
        problem = Problem(path, data.count(b"\n", 0, exc.start) + 1, None, message)
        raise ConfigError([problem]) from None
    return parse_config(text, path.absolute(), check_files=check_files)


def parse_config(text: str, path: Path, *, check_files: bool = True) -> Config:
    """Validate the TOML ``text`` of the config file at ``path`` (used for messages and paths)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, column, message = decode_error_position(exc, text)
        where = f" at column {column}" if line is not None else ""
        problem = Problem(path, line, None, f"invalid TOML{where}: {message}")
        raise ConfigError([problem]) from None
    except RecursionError:
        problem = Problem(path, None, None, "invalid TOML: values nested too deeply")
        raise ConfigError([problem]) from None
    return _Reader(text, path, check_files).config(raw)


_INVALID = object()
"""A value that was present but wrong (already reported): blocks checks that depend on it."""
_NOT_A_TABLE = ""
"""Stands in for the keys of a table that was not a table (no real key is ever stored as "")."""

Conv = Callable[["_Reader", KeyPath, object], object]


def _integer(desc: str, ok: Callable[[int], bool]) -> Conv:
    def conv(r: _Reader, key: KeyPath, v: object) -> object:
        if isinstance(v, int) and not isinstance(v, bool) and ok(v):  # TOML true is not 1
            return v
        return r.bad(key, f"expected an integer {desc}, got {show_value(v)}")

    return conv


def _seconds(r: _Reader, key: KeyPath, v: object) -> object:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0:
        return float(v)
    return r.bad(key, f"expected a number of seconds > 0, got {show_value(v)}")


def _number(desc: str, ok: Callable[[float], bool]) -> Conv:
    def conv(r: _Reader, key: KeyPath, v: object) -> object:
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and ok(v):
            return float(v)
        return r.bad(key, f"expected a number {desc}, got {show_value(v)}")

    return conv


def _string(r: _Reader, key: KeyPath, v: object) -> object:
    if isinstance(v, str) and v.strip():
        return v
    return r.bad(key, f"expected a non-empty string, got {show_value(v)}")


def _boolean(r: _Reader, key: KeyPath, v: object) -> object:
    return v if isinstance(v, bool) else r.bad(key, f"expected true or false, got {show_value(v)}")


def _cache_type(r: _Reader, key: KeyPath, v: object) -> object:
    if isinstance(v, str) and v in CACHE_TYPES:
        return v
    return r.bad(key, f"expected one of {', '.join(CACHE_TYPES)}, got {show_value(v)}")


def _flash_attn(r: _Reader, key: KeyPath, v: object) -> object:
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, str) and v in FLASH_ATTN_VALUES:
        return v
    return r.bad(key, f'expected "on", "off" or "auto" (or true/false), got {show_value(v)}')


def _path(r: _Reader, key: KeyPath, v: object) -> object:
    if not isinstance(v, str) or not v.strip() or "\0" in v:
        return r.bad(key, f"expected a path, got {show_value(v)}")
    try:
        p = Path(v).expanduser()
    except RuntimeError:  # "~" without a home directory
        return r.bad(key, f"cannot expand {show_value(v)}: no home directory")
    return p if p.is_absolute() else r.base / p


def _model(r: _Reader, key: KeyPath, v: object) -> object:
    p = _path(r, key, v)
    if not isinstance(p, Path) or not r.check_files:
        return p
    try:
        if p.is_dir():
            return r.bad(key, f"expected a GGUF file, {p} is a directory")
        if not p.exists():
            return r.bad(key, f"expected an existing GGUF file, {p} does not exist")
    except (OSError, ValueError) as exc:
        return r.bad(key, f"cannot check {p}: {exc}")
    return p


def _str_list(r: _Reader, key: KeyPath, v: object) -> object:
    if not isinstance(v, list):
        return r.bad(key, f"expected an array of strings, got {show_value(v)}")
    for i, item in enumerate(v):
        if not isinstance(item, str):
            return r.bad(key, f"expected an array of strings, item {i + 1} is {show_value(item)}")
    return tuple(v)


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env_name(r: _Reader, key: KeyPath, v: object) -> object:
    if isinstance(v, str) and _ENV_NAME.fullmatch(v):
        return v
    return r.bad(key, f"expected an environment variable name (like MY_KEY), got {show_value(v)}")


def _extra_args(r: _Reader, key: KeyPath, v: object) -> object:
    args = _str_list(r, key, v)
    if not isinstance(args, tuple):
        return args
    for arg in args:
        flag = arg.split("=", 1)[0]
        if flag == "--api-key":
            return r.bad(
                key,
                "--api-key would put the key on the command line, which every user can read; "
                "set [server] api_key_env instead",
            )
        if flag == "--host":
            return r.bad(key, "--host here would bypass the loopback check; set [server] host")
    return args


def _env(r: _Reader, key: KeyPath, v: object) -> object:
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
    return MappingProxyType(dict(v)) if ok else _INVALID


SERVER_KEYS: dict[str, Conv] = {
    "binary": _path,
    "host": _string,
    "port": _integer("1-65535", lambda n: 1 <= n <= 65535),
    "ready_timeout_s": _seconds,
    "stop_grace_s": _seconds,
    "log_dir": _path,
    "allow_remote": _boolean,
    "api_key_env": _env_name,
}
PROFILE_KEYS: dict[str, Conv] = {
    "model": _model,
    "ctx": _integer("> 0", lambda n: n > 0),
    "n_gpu_layers": _integer(">= -1", lambda n: n >= -1),
    "n_cpu_moe": _integer(">= 0", lambda n: n >= 0),
    "batch": _integer(">= 1", lambda n: n >= 1),
    "ubatch": _integer(">= 1", lambda n: n >= 1),
    "cache_type_k": _cache_type,
    "cache_type_v": _cache_type,
    "flash_attn": _flash_attn,
    "cont_batching": _boolean,
    "jinja": _boolean,
    "threads": _integer(">= 1 or -1", lambda n: n >= 1 or n == -1),
    "mmap": _boolean,
    "extra_args": _extra_args,
    "env": _env,
    "system_prompt": _string,
    "inherit": _string,
}


def _url(r: _Reader, key: KeyPath, v: object) -> object:
    if isinstance(v, str) and v.startswith(("http://", "https://")) and len(v) > 8:
        return v.rstrip("/")
    return r.bad(key, f"expected an http(s) URL, got {show_value(v)}")


def _prompt_sets(r: _Reader, key: KeyPath, v: object) -> object:
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
    return MappingProxyType(out) if ok else _INVALID


BENCH_KEYS: dict[str, Conv] = {"prompts": _prompt_sets}
REMOTE_KEYS: dict[str, Conv] = {
    "name": _string,
    "url": _url,
    "api_key_env": _string,
    "exporter_url": _url,
}
CHAT_KEYS: dict[str, Conv] = {
    "system_prompt": _string,
    "max_tokens": _integer(">= 1", lambda n: n >= 1),
    "temperature": _number(">= 0", lambda x: x >= 0),
    "stall_timeout_s": _seconds,
    "api_key_env": _string,
}


class _Reader:
    """One validation pass over a parsed document, collecting problems instead of raising."""

    def __init__(self, text: str, path: Path, check_files: bool) -> None:
        self.path = path
        self.base = path.parent
        self.check_files = check_files
        self.locator = KeyLocator(text)
        self.problems: list[Problem] = []

    def bad(self, key: KeyPath, message: str) -> object:
        problem = Problem(self.path, self.locator.line(key), render_key(key), message)
        if problem not in self.problems:
            self.problems.append(problem)
        return _INVALID

    def unknown(self, key: KeyPath, value: object, known: tuple[str, ...]) -> None:
        what = "table" if isinstance(value, dict) else "key"
        close = difflib.get_close_matches(key[-1], known, n=1)
        hint = f"did you mean `{close[0]}`?" if close else f"known keys: {', '.join(known)}"
        self.bad(key, f"unknown {what}; {hint}")

    def unknown_profile(self, key: KeyPath, name: str, names: list[str]) -> None:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean {show_value(close[0])}? " if close else ""
        listed = ", ".join(names) or "none"
        self.bad(key, f"unknown profile {show_value(name)}; {hint}profiles: {listed}")

    def table(self, key: KeyPath, value: object, convs: dict[str, Conv]) -> dict[str, object]:
        """Convert the keys of one table; unknown and wrong ones are reported and left out."""
        if not isinstance(value, dict):
            self.bad(key, f"expected a table, got {show_value(value)}")
            return {_NOT_A_TABLE: _INVALID}
        out: dict[str, object] = {}
        for k, v in value.items():
            conv = convs.get(k)
            if conv is None:
                self.unknown((*key, k), v, tuple(convs))
            else:
                out[k] = conv(self, (*key, k), v)
        return out

    def config(self, raw: dict[str, object]) -> Config:
        for k, v in raw.items():
            if k not in TOP_KEYS:
                self.unknown((k,), v, TOP_KEYS)
        server = self.table(("server",), raw.get("server", {}), SERVER_KEYS)
        self.remote(server)
        chat = self.table(("chat",), raw.get("chat", {}), CHAT_KEYS)
        if isinstance(server.get("api_key_env"), str) and "api_key_env" not in chat:
            chat["api_key_env"] = server["api_key_env"]  # the chat client sends the server's key
        default = raw.get("default_profile")
        if default is not None:
            default = _string(self, ("default_profile",), default)
        profiles = self.profiles(raw.get("profiles", {}))
        remotes = self.remotes(raw.get("remotes", []))
        bench = self.table(("bench",), raw.get("bench", {}), BENCH_KEYS)
        if isinstance(default, str) and isinstance(raw.get("profiles"), dict):
            names = list(raw["profiles"])  # type: ignore[call-overload]
            if names and default not in names:
                self.unknown_profile(("default_profile",), default, names)
        if self.problems:
            self.problems.sort(key=lambda p: p.line or 0)
            raise ConfigError(self.problems)
        return Config(
            path=self.path,
            server=ServerSettings(**server),  # type: ignore[arg-type]
            profiles=MappingProxyType(profiles),
            default_profile=default if isinstance(default, str) else None,
            chat=ChatSettings(**chat),  # type: ignore[arg-type]
            remotes=remotes,
            bench=BenchSettings(**bench),  # type: ignore[arg-type]
        )

    def remotes(self, value: object) -> tuple[Remote, ...]:
        """The ``[[remotes]]`` array: each needs a unique ``name`` and a ``url``."""
        if not isinstance(value, list):
            self.bad(("remotes",), f"expected [[remotes]] tables, got {show_value(value)}")
            return ()
        out: list[Remote] = []
        seen: set[str] = set()
        for i, item in enumerate(value):
            key: KeyPath = ("remotes", str(i))
            table = self.table(key, item, REMOTE_KEYS)
            if _NOT_A_TABLE in table:
                continue
            for required in ("name", "url"):
                if required not in table:
                    self.bad(key, f"missing required key `{required}`")
            name = table.get("name")
            if isinstance(name, str) and name in seen:
                self.bad((*key, "name"), f"duplicate remote name {show_value(name)}")
            if isinstance(name, str):
                seen.add(name)
            if (
                all(v is not _INVALID for v in table.values())
                and "name" in table
                and "url" in table
            ):
                out.append(Remote(**table))  # type: ignore[arg-type]
        return tuple(out)

    def remote(self, server: dict[str, object]) -> None:
        """A host other than loopback needs ``allow_remote = true`` and an API key."""
        host = server.get("host")
        if not isinstance(host, str) or is_loopback(host):
            return
        missing = []
        if server.get("allow_remote") is not True:
            missing.append("allow_remote = true")
        if not isinstance(server.get("api_key_env"), str):
            missing.append("api_key_env (the variable holding an API key)")
        if missing:
            self.bad(
                ("server", "host"),
                f"{show_value(host)} is not a loopback address: serving beyond this machine "
                f"needs {' and '.join(missing)} in [server]",
            )

    def profiles(self, value: object) -> dict[str, Profile]:
        if not isinstance(value, dict):
            self.bad(("profiles",), f"expected a table of profiles, got {show_value(value)}")
            return {}
        if not value:
            self.bad(("profiles",), "no profiles defined; add a [profiles.NAME] table with a model")
            return {}
        own: dict[str, dict[str, object]] = {}
        for name, table in value.items():
            if not name.strip():
                self.bad(("profiles", name), "profile name must not be empty")
            else:
                own[name] = self.table(("profiles", name), table, PROFILE_KEYS)
        result: dict[str, Profile] = {}
        for name in own:
            merged = self.inherit(name, own)
            if merged is not None:
                profile = self.build(name, *merged)
                if profile is not None:
                    result[name] = profile
        return result

    def inherit(
        self, name: str, own: dict[str, dict[str, object]]
    ) -> tuple[dict[str, object], dict[str, str]] | None:
        """The profile's values with its ``inherit`` chain applied, and where each came from."""
        chain = [name]
        while (parent := own[chain[-1]].get("inherit")) is not None:
            if not isinstance(parent, str):
                return None  # a wrong inherit value was already reported
            if parent not in own:
                names = [n for n in own if n != chain[-1]]
                self.unknown_profile(("profiles", chain[-1], "inherit"), parent, names)
                return None
            if parent in chain:
                # Report each cycle once, starting from its alphabetically first member.
                cycle = chain[chain.index(parent) :]
                first = cycle.index(min(cycle))
                cycle = cycle[first:] + cycle[:first]
                path = " -> ".join([*cycle, cycle[0]])
                self.bad(("profiles", cycle[0], "inherit"), f"inherit cycle: {path}")
                return None
            chain.append(parent)
        merged: dict[str, object] = {}
        origin: dict[str, str] = {}
        for source in reversed(chain):
            for k, v in own[source].items():
                if k == "env" and isinstance(v, Mapping) and isinstance(merged.get("env"), Mapping):
                    v = MappingProxyType({**merged["env"], **v})  # type: ignore[dict-item]
                merged[k] = v
                origin[k] = source
        merged["inherit"] = own[name].get("inherit")
        return merged, origin

    def build(self, name: str, merged: dict[str, object], origin: dict[str, str]) -> Profile | None:
        if _NOT_A_TABLE in merged:
            return None  # this profile, or one it inherits from, is not a table: nothing to check
        ok = all(v is not _INVALID for v in merged.values())
        if "model" not in merged:
            self.bad(("profiles", name), "missing required key `model` (the GGUF file to serve)")
            ok = False
        batch, ubatch = merged.get("batch"), merged.get("ubatch")
        if isinstance(batch, int) and isinstance(ubatch, int) and ubatch > batch:
            # Point at the value this profile set itself, else at where the ubatch came from.
            field_ = "batch" if origin["batch"] == name and origin["ubatch"] != name else "ubatch"
            self.bad(
                ("profiles", origin[field_], field_),
                f"ubatch ({ubatch}) must be <= batch ({batch})",
            )
            ok = False
        return Profile(name=name, **merged) if ok else None  # type: ignore[arg-type]
