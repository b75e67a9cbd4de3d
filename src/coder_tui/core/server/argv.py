"""Profiles turned into llama-server command lines, adapted to what the installed server accepts.

Owns the order and spelling of the flags (the seed's command line for the example profile), the
mapping of profile fields to flags across llama.cpp versions, shell quoting for display, profile
diffs and the ``profiles check`` summary. Reading the config is ``config.py``'s; finding out what a
binary accepts is ``server/caps.py``'s; spawning the process is ``server/process.py``'s.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Mapping

from coder_tui.core.config.loader import Config, Profile, ServerSettings
from coder_tui.core.errors import UserError
from coder_tui.core.server.caps import MODERN_CAPS, ServerCaps

# Spellings of each flag, preferred first (the seed's); the first one the server knows is used.
_ALIASES: dict[str, tuple[str, ...]] = {
    "-m": ("-m", "--model"),
    "--port": ("--port",),
    "--host": ("--host",),
    "-c": ("-c", "--ctx-size"),
    "-ngl": ("-ngl", "--n-gpu-layers", "--gpu-layers"),
    "--n-cpu-moe": ("--n-cpu-moe", "-ncmoe"),
    "-b": ("-b", "--batch-size"),
    "-ub": ("-ub", "--ubatch-size"),
    "--cache-type-k": ("--cache-type-k", "-ctk"),
    "--cache-type-v": ("--cache-type-v", "-ctv"),
    "--flash-attn": ("--flash-attn", "-fa"),
    "--cont-batching": ("--cont-batching", "-cb"),
    "--no-cont-batching": ("--no-cont-batching", "-nocb"),
    "--jinja": ("--jinja",),
    "--no-jinja": ("--no-jinja",),
    "-t": ("-t", "--threads"),
    "--metrics": ("--metrics",),
    "--no-mmap": ("--no-mmap",),
    "--load-mode": ("--load-mode", "-lm"),
}

# Profile fields that map to "flag value", in the order they appear on the command line.
_VALUE_FLAGS: tuple[tuple[str, str], ...] = (
    ("ctx", "-c"),
    ("n_gpu_layers", "-ngl"),
    ("n_cpu_moe", "--n-cpu-moe"),
    ("batch", "-b"),
    ("ubatch", "-ub"),
    ("cache_type_k", "--cache-type-k"),
    ("cache_type_v", "--cache-type-v"),
)

# Fields that say which profile a profile is, not how the server runs.
_IDENTITY_FIELDS = frozenset({"name", "inherit"})


class ProfileError(UserError):
    """A profile asks for something the installed llama-server cannot do."""


class _Builder:
    """Collects argv and, instead of stopping at the first, every flag the server lacks."""

    def __init__(self, profile: Profile, caps: ServerCaps, binary: str) -> None:
        self.profile = profile
        self.caps = caps
        self.argv = [binary]
        self.missing: list[str] = []

    def spelling(self, flag: str) -> str | None:
        return next((f for f in _ALIASES.get(flag, (flag,)) if self.caps.has(f)), None)

    def add(self, what: str, flag: str, *values: str) -> None:
        """Append ``flag values...``; record ``what`` as unsupported when the server lacks it."""
        spelled = self.spelling(flag)
        if spelled is None:
            self.missing.append(
                f"profile {self.profile.name}: {what} needs {flag}, "
                f"which llama-server {self.caps.version} does not have"
            )
        else:
            self.argv += [spelled, *values]

    def add_if_known(self, flag: str) -> None:
        """Append ``flag`` only when the server has it (an off switch for a default-off feature)."""
        spelled = self.spelling(flag)
        if spelled is not None:
            self.argv.append(spelled)


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
    b = _Builder(profile, caps, binary)
    b.add("model", "-m", str(profile.model))
    b.add("port", "--port", str(server.port))
    for field_name, flag in _VALUE_FLAGS:
        value = getattr(profile, field_name)
        if value is not None:
            b.add(field_name, flag, str(value))
    _flash_attn(b, profile)
    if profile.cont_batching is True:
        b.add("cont_batching", "--cont-batching")
    elif profile.cont_batching is False:
        # Servers without --no-cont-batching had it off by default.
        b.add_if_known("--no-cont-batching")
    if profile.jinja is True:
        b.add("jinja", "--jinja")
    elif profile.jinja is False:
        b.add_if_known("--no-jinja")
    if profile.threads is not None:
        b.add("threads", "-t", str(profile.threads))
    # The host is always explicit (never the server's default), and /metrics feeds the dashboard.
    b.add("host", "--host", server.host)
    b.add("metrics", "--metrics")
    if profile.mmap is False:
        if b.spelling("--no-mmap") is None and b.spelling("--load-mode") is not None:
            b.add("mmap", "--load-mode", "none")
        else:
            b.add("mmap", "--no-mmap")
    if any(arg.split("=", 1)[0] == "--api-key" for arg in profile.extra_args):
        # argv is readable by every user (/proc/PID/cmdline): the key goes in LLAMA_API_KEY.
        b.missing.append(
            f"profile {profile.name}: --api-key in extra_args would show the key to every "
            "user; set [server] api_key_env instead"
        )
    b.argv += profile.extra_args
    if b.missing:
        raise ProfileError("\n".join(b.missing))
    return b.argv


def _flash_attn(b: _Builder, profile: Profile) -> None:
    value = profile.flash_attn
    if value is None:
        return
    if b.caps.flash_attn_takes_value or b.spelling("--flash-attn") is None:
        b.add("flash_attn", "--flash-attn", value)  # reports it missing in the second case
    elif value == "on":
        # Older servers: a bare switch, off by default, with no "auto".
        b.add("flash_attn", "--flash-attn")


def shell_quote(argv: list[str]) -> str:
    """``argv`` as one line a POSIX shell would run the same way (for display and copying)."""
    return shlex.join(argv)


def diff_profiles(a: Profile, b: Profile) -> list[tuple[str, object, object]]:
    """``(field, value in a, value in b)`` for every serving setting that differs.

    ``name`` and ``inherit`` are left out: they say which profile it is, not how it runs.
    """
    out: list[tuple[str, object, object]] = []
    for f in dataclasses.fields(Profile):
        if f.name in _IDENTITY_FIELDS:
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
        parts += [
            f"{label} {value}"
            for label, value in (
                ("ctx", p.ctx),
                ("ngl", p.n_gpu_layers),
                ("n-cpu-moe", p.n_cpu_moe),
                ("batch", _pair(p.batch, p.ubatch)),
                ("kv", _pair(p.cache_type_k, p.cache_type_v)),
                ("fa", p.flash_attn),
                ("threads", p.threads),
            )
            if value is not None
        ]
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


def _pair(a: object, b: object) -> str | None:
    if a is None and b is None:
        return None
    return f"{'-' if a is None else a}/{'-' if b is None else b}"
