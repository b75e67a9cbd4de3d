"""Security checks that need no network and no terminal: addresses, keys, file modes, versions.

Owns what counts as loopback, where a config holds a literal API key and whether other users can
read that file, the redaction of keys from log lines, and the table of llama-server builds with
known security fixes (``data/security_advisories.toml``, each entry with its source). Passing the
key to the server is ``server/process.py``'s; refusing a non-loopback host without a key is
``config.py``'s; printing the warnings is the caller's (``commands.py``, the UI).
"""

from __future__ import annotations

import ipaddress
import re
import stat
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from coder_tui.core.config.schema import Config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, no-redef, unused-ignore]

KEY_ENV = "LLAMA_API_KEY"
"""The variable llama-server reads its API key from (never ``--api-key``: argv is public)."""
REDACTED = "[redacted]"
MIN_SECRET_LEN = 4
"""Shorter values are not replaced verbatim (they would mangle ordinary words in the log)."""

# A variable name ending in KEY, TOKEN, SECRET or PASSWORD (not TOKENIZERS_PARALLELISM).
_SECRET_NAME = re.compile(r"(?:^|_)(?:API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD)$", re.IGNORECASE)
# Key-shaped text in a log line, whatever the key: the value after these is hidden.
_KEY_PATTERNS = (
    re.compile(r"(authorization\s*:\s*bearer\s+)([^\s\"',]+)", re.IGNORECASE),
    re.compile(r"(--api-key(?:\s+|=))([^\s\"',]+)", re.IGNORECASE),
    re.compile(r"((?:llama_)?api[_-]?key[\"']?\s*[:=]\s*[\"']?)([^\s\"',]+)", re.IGNORECASE),
)


# -- addresses -----------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """True when every address in ``host`` (llama-server takes a comma-separated list) is this
    machine only: ``localhost``, 127.0.0.0/8 or ``::1``. Names other than localhost are not."""
    parts = [p.strip().strip("[]") for p in host.split(",")]
    if not parts or not all(parts):
        return False
    for part in parts:
        if part.lower() == "localhost":
            continue
        try:
            if not ipaddress.ip_address(part).is_loopback:
                return False
        except ValueError:
            return False
    return True


# -- keys ------------------------------------------------------------------------------------------


def looks_secret(name: str) -> bool:
    """Whether an environment variable named ``name`` probably holds a key or password."""
    return bool(_SECRET_NAME.search(name))


def literal_keys(config: Config) -> list[str]:
    """Where the config file itself holds a key: ``profiles.NAME.env.VAR`` for each variable with
    a key-like name and a value (``api_key_env`` only names a variable, so it is not one)."""
    found = []
    for name, profile in config.profiles.items():
        for var, value in profile.env.items():
            if looks_secret(var) and value:
                found.append(f"profiles.{name}.env.{var}")
    return found


def readable_by_others(path: Path) -> bool:
    """True when users other than the owner may read ``path`` (group or world read bit)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IRGRP | stat.S_IROTH))


def key_exposure_warning(config: Config) -> str | None:
    """One warning line when the config file holds a key and other users can read it."""
    if config.path is None:
        return None
    where = literal_keys(config)
    if not where or not readable_by_others(config.path):
        return None
    mode = config.path.stat().st_mode & 0o777
    return (
        f"warning: {config.path} holds an API key ({where[0]}) and other users can read it "
        f"(mode {mode:04o}); run: chmod 600 {config.path}"
    )


class Redactor:
    """Hides keys in text: the given secret values wherever they appear, and anything that looks
    like a key after ``Authorization: Bearer``, ``--api-key`` or ``api_key=``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = {s for s in secrets if len(s) >= MIN_SECRET_LEN}
        # Longest first, so a key that contains another is hidden whole.
        self._secrets = sorted(values, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        for pattern in _KEY_PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        return text


def server_secrets(env: Mapping[str, str]) -> list[str]:
    """The values in an environment for a server process that must never be shown."""
    return [value for name, value in env.items() if looks_secret(name) and value]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with ``secrets`` and key-shaped values hidden (see ``Redactor``)."""
    return Redactor(secrets)(text)


# -- llama-server versions -------------------------------------------------------------------------


@dataclass(frozen=True)
class Advisory:
    """One llama.cpp security fix: builds before ``fixed_build`` lack it."""

    id: str
    """CVE id where there is one, else the GitHub advisory id."""
    aliases: tuple[str, ...]
    component: str
    """What is affected: ``server`` (HTTP API), ``gguf`` (model file parsing), ``tokenizer``."""
    summary: str
    fixed_build: int | None
    """First llama.cpp build (``bNNNN``) with the fix; ``None`` when only a commit is known."""
    fixed_commit: str | None
    source: str
    """Where the entry was read (advisory, CVE record or fix pull request)."""


_BUILD_PATTERNS = (
    re.compile(r"\bversion:?\s+(\d+)(?![\d.])"),
    re.compile(r"\bbuild:?\s+(\d+)(?![\d.])"),
    re.compile(r"\bb(\d{3,6})\b"),
)


def build_number(version: str) -> int | None:
    """The llama.cpp build number in a ``--version`` line (``version: 5662 (abc1234)``); ``None``
    when there is none or it is 0 (a source build without git, which says nothing)."""
    for pattern in _BUILD_PATTERNS:
        match = pattern.search(version)
        if match:
            number = int(match.group(1))
            return number or None
    return None


def load_advisories(text: str | None = None) -> tuple[Advisory, ...]:
    """The advisory table shipped with coder-tui (or parsed from ``text``)."""
    if text is None:
        data = resources.files("coder_tui") / "data" / "security_advisories.toml"
        text = data.read_text(encoding="utf-8")
    raw = tomllib.loads(text)
    out = []
    for entry in raw.get("advisory", []):
        fixed = entry.get("fixed_build")
        out.append(
            Advisory(
                id=str(entry["id"]),
                aliases=tuple(str(a) for a in entry.get("aliases", ())),
                component=str(entry["component"]),
                summary=str(entry["summary"]),
                fixed_build=int(fixed) if fixed is not None else None,
                fixed_commit=entry.get("fixed_commit"),
                source=str(entry["source"]),
            )
        )
    return tuple(out)


def missing_fixes(version: str, table: Iterable[Advisory] | None = None) -> list[Advisory]:
    """The advisories whose fix the llama-server with this ``--version`` line predates."""
    build = build_number(version)
    if build is None:
        return []
    advisories = load_advisories() if table is None else table
    return [a for a in advisories if a.fixed_build is not None and build < a.fixed_build]


def advisory_warning(version: str, table: Iterable[Advisory] | None = None) -> str | None:
    """One warning line when llama-server predates known security fixes, else ``None``."""
    missing = missing_fixes(version, table)
    if not missing:
        return None
    ids = ", ".join(a.id for a in missing)
    newest = max(a.fixed_build or 0 for a in missing)
    kinds = ", ".join(sorted({a.component for a in missing}))
    return (
        f"warning: llama-server build {build_number(version)} predates {len(missing)} known "
        f"security fix(es) ({kinds}: {ids}); update llama.cpp to build b{newest} or newer"
    )
