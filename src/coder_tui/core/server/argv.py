"""Profiles turned into llama-server command lines, adapted to what the installed server accepts.

Owns the whole command line (the profile's flags between the ``--port``, ``--host`` and
``--metrics`` coder-tui always passes, the seed's order), the refusal of a key on the command
line, shell quoting for display, profile diffs and the ``profiles check`` summary. Which flag each
key passes, in which spelling on which server, is the profile-flag table's
(``config/flags.py``); reading the config is ``config/loader.py``'s; finding out what a binary
accepts is ``server/caps.py``'s; spawning the process is ``server/process.py``'s.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Mapping

from coder_tui.core.config import flags
from coder_tui.core.config.cmdline import render
from coder_tui.core.config.loader import Config, Profile, ServerSettings
from coder_tui.core.errors import UserError
from coder_tui.core.server.caps import MODERN_CAPS, ServerCaps


class ProfileError(UserError):
    """A profile asks for something the installed llama-server cannot do."""


def build_argv(
    profile: Profile,
    server: ServerSettings,
    caps: ServerCaps = MODERN_CAPS,
    binary: str = "llama-server",
) -> list[str]:
    """The llama-server argv for ``profile`` (a list, never a shell string, never a key).

    Raises ``ProfileError`` naming every option whose flag this server does not accept, and an
    ``--api-key`` in ``extra_args`` (the key reaches the server through its environment).
    """
    # The host is always explicit (never the server's default), and /metrics feeds the dashboard.
    fixed: dict[str, object] = {"port": server.port, "host": server.host, "metrics": True}

    def value_of(flag: flags.Flag) -> object:
        return getattr(profile, flag.key) if flag.is_profile_key else fixed.get(flag.key)

    argv, missing = render(value_of, caps)
    problems = [
        f"profile {profile.name}: {flag.key} needs {spelling}, "
        f"which llama-server {caps.version} does not have"
        for flag, spelling in missing
    ]
    if any(arg.split("=", 1)[0] in flags.API_KEY.spellings for arg in profile.extra_args):
        # argv is readable by every user (/proc/PID/cmdline): the key goes in LLAMA_API_KEY.
        problems.append(
            f"profile {profile.name}: --api-key in extra_args would show the key to every "
            "user; set [server] api_key_env instead"
        )
    if problems:
        raise ProfileError("\n".join(problems))
    return [binary, *argv]


def shell_quote(argv: list[str]) -> str:
    """``argv`` as one line a POSIX shell would run the same way (for display and copying)."""
    return shlex.join(argv)


def diff_profiles(a: Profile, b: Profile) -> list[tuple[str, object, object]]:
    """``(field, value in a, value in b)`` for every serving setting that differs.

    ``name`` and ``inherit`` are left out: they say which profile it is, not how it runs.
    """
    out: list[tuple[str, object, object]] = []
    for f in dataclasses.fields(Profile):
        if f.name == "name" or flags.BY_KEY[f.name].identity:
            continue
        va, vb = getattr(a, f.name), getattr(b, f.name)
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            if dict(va) != dict(vb):
                out.append((f.name, dict(va), dict(vb)))
        elif va != vb:
            out.append((f.name, va, vb))
    return out


def check_profiles(config: Config, caps: ServerCaps = MODERN_CAPS) -> list[str]:
    """One summary line per profile for ``coder-tui profiles check``: model, size, key flags.

    Problems (a missing model file, flags the server lacks) are stated on the profile's line.
    """
    lines = []
    width = max((len(n) for n in config.profiles), default=0)
    for name, p in config.profiles.items():
        mark = "*" if name == config.default_profile else " "
        parts = [f"{mark} {name:<{width}}", p.model.name, _model_size(p)]
        parts += flags.summary(p)
        try:
            build_argv(p, config.server, caps)
        except ProfileError as exc:
            parts.append("UNSUPPORTED: " + "; ".join(exc.args[0].splitlines()))
        lines.append("  ".join(parts))
    return lines


def _model_size(profile: Profile) -> str:
    try:
        size = profile.model.stat().st_size
    except OSError:
        return "MISSING"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"
