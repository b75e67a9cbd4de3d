"""Checks of a loaded config that warn without refusing it: exposed keys, silent overrides.

Owns ``literal_keys`` (where the file itself holds a key), ``key_exposure_warning`` (one line
when it does and other users can read the file) and ``override_warnings`` (settings that another
silently overrides: ``extra_args`` over profile keys and coder-tui's own flags, ``env`` over the
loader). What a key-like name is and what a readable file
is are ``core/security.py``'s; printing the warning is the caller's (``commands.py``, the UI).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from coder_tui.core.config.flags import OWN_FLAGS, TABLE
from coder_tui.core.config.positions import KeyLocator, KeyPath, render_key
from coder_tui.core.config.schema import Config, Profile
from coder_tui.core.errors import Problem
from coder_tui.core.sanitize import sanitize_line
from coder_tui.core.security import looks_secret, readable_by_others

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, no-redef, unused-ignore]


def literal_keys(config: Config) -> list[str]:
    """Where the config file itself holds a key: ``profiles.NAME.env.VAR`` for each variable with
    a key-like name and a value (``api_key_env`` only names a variable, so it is not one)."""
    found = []
    for name, profile in config.profiles.items():
        for var, value in profile.env.items():
            if looks_secret(var) and value:
                found.append(f"profiles.{name}.env.{var}")
    return found


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


LOADER_ENV = re.compile(r"LD_\w*|DYLD_\w*|PATH")
"""Variables that change which programs and libraries the server's process loads."""


def override_warnings(config: Config) -> list[str]:
    """One ``warning:`` line (file, line, key) for each setting another one silently overrides.

    ``extra_args`` come last on llama-server's command line, so a flag there that repeats a
    profile key wins over it, and one of coder-tui's own flags (``--port``, ``--hf-repo``) makes
    the server differ from what coder-tui watches; ``env`` entries like ``LD_PRELOAD`` or
    ``PATH`` change what the server runs. Each is reported where its table sets it.
    """
    if config.path is None:
        return []
    try:
        text = config.path.read_text(encoding="utf-8")
        raw = tomllib.loads(text).get("profiles", {})
    except (OSError, ValueError):
        return []
    locator = KeyLocator(text)
    out: list[str] = []

    def warn(key: KeyPath, message: str) -> None:
        problem = Problem(config.path or Path(), locator.line(key), render_key(key), message)
        out.append(sanitize_line(f"warning: {problem}"))

    for name, profile in config.profiles.items():
        own = raw.get(name) if isinstance(raw, dict) else None
        if not isinstance(own, dict):
            continue
        if "extra_args" in own:
            for arg in profile.extra_args:
                message = _override(profile, arg.split("=", 1)[0])
                if message:
                    warn(("profiles", name, "extra_args"), message)
        for var in own.get("env", {}) if isinstance(own.get("env"), dict) else ():
            if LOADER_ENV.fullmatch(var):
                warn(
                    ("profiles", name, "env", var),
                    "changes which programs and libraries llama-server loads; "
                    "remove it unless that is what you want",
                )
    return out


def _override(profile: Profile, head: str) -> str | None:
    if head in OWN_FLAGS:
        return (
            f"{head} replaces {OWN_FLAGS[head]}, which coder-tui passes itself and then "
            "watches; set that instead"
        )
    for flag in TABLE:
        if not flag.is_profile_key or head not in (*flag.spellings, *flag.off):
            continue
        value = getattr(profile, flag.key, None)
        if value is None or value == ():
            return None
        return (
            f"{head} repeats the profile key `{flag.key}`; extra_args come last, so "
            f"`{flag.key}` is ignored"
        )
    return None
