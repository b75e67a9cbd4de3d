"""Security checks that need no network, no terminal and no config: addresses, keys, file modes,
versions.

Owns the one rule for what counts as loopback (``is_loopback``), which variable names hold keys,
whether other users can read a file, the redaction of keys from log lines, and the table of
llama-server builds with known security fixes (``data/security_advisories.toml``, each entry with
its source). Where a config holds a literal key is ``config/key_checks.py``'s (it reads a
``Config``; this module imports nothing from ``core.config``); passing the key to the server is
``server/process.py``'s; refusing a non-loopback host without a key is ``config/loader.py``'s;
printing the warnings is the caller's (``commands.py``, the UI).
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

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})
"""Names taken as this machine without a lookup (``/etc/hosts`` maps both to loopback)."""

_BRACKETED = re.compile(r"\[([^\[\]]+)\](?::[0-9]{1,5})?")
_PORT = re.compile(r"[0-9]{1,5}")
_IPV4_PART = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")


def is_loopback(host: str) -> bool:
    """True when every address in ``host`` (llama-server takes a comma-separated list) is this
    machine only. The one rule for every "is it only this machine?" check (``[server] host``,
    ``--listen``, a chat URL's host). Accepted, each with or without a ``:PORT``:

    * ``localhost`` and ``localhost.localdomain`` (any case); no other name (no DNS lookups);
    * 127.0.0.0/8 in every spelling the C resolver takes: ``127.0.0.1``, ``127.1``, ``0x7f.1``,
      ``2130706433``;
    * ``::1`` in any IPv6 spelling, bare or in brackets (``[::1]:8080``), and IPv4-mapped
      loopback (``::ffff:127.0.0.1``).
    """
    parts = [p.strip() for p in host.split(",")]
    return all(_one_loopback(p) for p in parts)


def _one_loopback(part: str) -> bool:
    address = _without_port(part)
    if not address:
        return False
    if address.lower() in LOOPBACK_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        number = _ipv4_number(address)
        return number is not None and number >> 24 == 127
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def _without_port(part: str) -> str:
    """The address in ``part``: inside ``[...]`` (with an optional port), else before a single
    ``:PORT``; a bare IPv6 address (several colons) is returned whole."""
    if part.startswith("["):
        match = _BRACKETED.fullmatch(part)
        return match.group(1) if match else ""
    head, sep, port = part.rpartition(":")
    if sep and ":" not in head:
        return head if _PORT.fullmatch(port) else ""
    return part


def _ipv4_number(text: str) -> int | None:
    """An IPv4 address in ``inet_aton``'s forms (1 to 4 dotted parts, each decimal, octal with a
    leading 0 or hex with 0x; the last part fills the remaining bytes) as a 32-bit number."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_IPV4_PART.fullmatch(p) for p in parts):
        return None
    values = [
        int(p, 0) if p[:2].lower() == "0x" else int(p, 8 if p[0] == "0" else 10) for p in parts
    ]
    *head, last = values
    if any(v > 255 for v in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    return sum(v << (24 - 8 * i) for i, v in enumerate(head)) + last


# -- keys ------------------------------------------------------------------------------------------


def looks_secret(name: str) -> bool:
    """Whether an environment variable named ``name`` probably holds a key or password."""
    return bool(_SECRET_NAME.search(name))


def readable_by_others(path: Path) -> bool:
    """True when users other than the owner may read ``path`` (group or world read bit)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IRGRP | stat.S_IROTH))


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
