"""The config file: TOML read with tomllib into frozen dataclasses, validated all at once.

Owns reading, ``inherit`` resolution and the cross-key checks; the schema itself (and the field
docs) lives in ``schema.py`` and is re-exported here, the checks of single values in ``fields.py``
and, for profile keys, in the profile-flag table (``flags.py``). Turning a profile into a command
line belongs to ``server/argv.py``; finding the file belongs to ``paths.py``.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from coder_tui.core.config.fields import (
    BENCH_KEYS,
    CHAT_KEYS,
    INVALID,
    NOT_A_TABLE,
    REMOTE_KEYS,
    SERVER_KEYS,
    Conv,
    text_value,
)
from coder_tui.core.config.flags import CACHE_TYPES, PROFILE_KEYS
from coder_tui.core.config.positions import (
    KeyLocator,
    KeyPath,
    decode_error_position,
    render_key,
    show_value,
)
from coder_tui.core.config.schema import (
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

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, no-redef, unused-ignore]

# -- loading -------------------------------------------------------------------------------------

MAX_PROBLEMS = 10
"""Problems listed one per line; the rest are counted ("and 99,990 more")."""

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


class _Reader:
    """One validation pass over a parsed document, collecting problems instead of raising."""

    def __init__(self, text: str, path: Path, check_files: bool) -> None:
        self.path = path
        self.base = path.parent
        self.check_files = check_files
        self.locator = KeyLocator(text)
        self.problems: list[Problem] = []
        self._seen: set[int] = set()  # hashes of every problem, kept or only counted
        self.more = 0
        """Problems found beyond the ``MAX_PROBLEMS`` kept: counted, not kept."""

    @property
    def full(self) -> bool:
        return len(self.problems) >= MAX_PROBLEMS

    def bad(self, key: KeyPath, message: str) -> object:
        # A set, not a scan of the list: 100,000 problems must stay linear (a scan took 25 s
        # for 16,000); beyond the cap only a hash of each is kept, so memory stays small too.
        problem = Problem(self.path, self.locator.line(key), render_key(key), message)
        digest = hash(problem)
        if digest not in self._seen:
            self._seen.add(digest)
            if self.full:
                self.more += 1
            else:
                self.problems.append(problem)
        return INVALID

    def report(self) -> ConfigError:
        """Every problem kept, by line, and how many more there were."""
        self.problems.sort(key=lambda p: p.line or 0)
        rest = [Problem(self.path, None, None, f"and {self.more:,} more")] if self.more else []
        return ConfigError([*self.problems, *rest])

    def unknown(self, key: KeyPath, value: object, known: tuple[str, ...]) -> None:
        what = "table" if isinstance(value, dict) else "key"
        if self.full:  # only counted: spare the "did you mean" search
            self.bad(key, f"unknown {what}")
            return
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
            return {NOT_A_TABLE: INVALID}
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
            default = text_value(self, ("default_profile",), default)
        profiles = self.profiles(raw.get("profiles", {}))
        remotes = self.remotes(raw.get("remotes", []))
        bench = self.table(("bench",), raw.get("bench", {}), BENCH_KEYS)
        if isinstance(default, str) and isinstance(raw.get("profiles"), dict):
            names = list(raw["profiles"])  # type: ignore[call-overload]
            if names and default not in names:
                self.unknown_profile(("default_profile",), default, names)
        if self.problems:
            raise self.report()
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
            if NOT_A_TABLE in table:
                continue
            for required in ("name", "url"):
                if required not in table:
                    self.bad(key, f"missing required key `{required}`")
            name = table.get("name")
            if isinstance(name, str) and name in seen:
                self.bad((*key, "name"), f"duplicate remote name {show_value(name)}")
            if isinstance(name, str):
                seen.add(name)
            if all(v is not INVALID for v in table.values()) and "name" in table and "url" in table:
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
        if NOT_A_TABLE in merged:
            return None  # this profile, or one it inherits from, is not a table: nothing to check
        ok = all(v is not INVALID for v in merged.values())
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
