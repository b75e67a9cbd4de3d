"""A profile's llama-server command line, written from the profile-flag table and read back.

Owns ``render`` (the table's flags in order, each value in the spelling and form a server
accepts, and what the server lacks), ``profile_args`` (a profile's own arguments in the preferred
spellings) and the read-back: ``scan`` finds the table's flags in any command line or
``extra_args`` (``-f VALUE``, ``--flag=VALUE``, switches), ``strip`` removes some. Which flags
there are, and how each key is passed, is the table's (``flags.py``); the whole command line with
its host and port is ``server/argv.py``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from coder_tui.core.config.flags import BY_KEY, TABLE, Flag, Form
from coder_tui.core.config.schema import Profile


class ServerFlags(Protocol):
    """What ``render`` needs to know about a server (``server/caps.py`` ``ServerCaps``)."""

    def has(self, flag: str) -> bool: ...

    def takes_value(self, flag: str) -> bool: ...


class FlagMissing(Exception):
    """The server lacks ``flag``, which a value needs."""

    def __init__(self, flag: str) -> None:
        super().__init__(flag)
        self.flag = flag


def _known(spellings: Sequence[str], server: ServerFlags | None) -> str | None:
    if server is None:
        return spellings[0] if spellings else None
    return next((s for s in spellings if server.has(s)), None)


def args_for(flag: Flag, value: object, server: ServerFlags | None = None) -> list[str]:
    """The arguments that pass ``value`` for ``flag`` to ``server`` (``None``: any server, the
    preferred spellings). Raises ``FlagMissing`` when the server lacks the flag the value needs."""
    if value is None or value == () or flag.form is Form.NONE:
        return []  # unset, or an empty list: nothing to pass, no flag needed
    items = value if isinstance(value, (tuple, list)) else (value,)
    if flag.form is Form.RAW:
        return [str(v) for v in items]
    if flag.form is Form.SWITCH:
        if value:
            if not flag.spellings:
                return []
            on = _known(flag.spellings, server)
            if on is None:
                raise FlagMissing(flag.spellings[0])
            return [on]
        off = _known(flag.off, server)
        if off is not None:
            return [off]
        if flag.off_instead is not None:
            instead = _known(flag.off_instead[0], server)
            if instead is not None:
                return [instead, flag.off_instead[1]]
        if flag.off_is_default or not flag.off:
            return []
        raise FlagMissing(flag.off[0])
    spelled = _known(flag.spellings, server)
    if spelled is None:
        raise FlagMissing(flag.spellings[0])
    if flag.form is Form.EACH:
        return [arg for item in items for arg in (spelled, str(item))]
    if flag.bare is not None and server is not None and not server.takes_value(spelled):
        return [spelled] if value == flag.bare else []
    return [spelled, str(value)]


def flag_args(key: str, value: object) -> list[str]:
    """``value`` of ``key`` as arguments in the preferred spellings (``-ngl 42``)."""
    return args_for(BY_KEY[key], value)


def render(
    value_of: Callable[[Flag], object], server: ServerFlags | None = None
) -> tuple[list[str], list[tuple[Flag, str]]]:
    """The table's flags in order with ``value_of(flag)`` (``None``: left out) for ``server``,
    and ``(flag, spelling)`` for every flag the server lacks."""
    argv: list[str] = []
    missing: list[tuple[Flag, str]] = []
    for flag in TABLE:
        try:
            argv += args_for(flag, value_of(flag), server)
        except FlagMissing as exc:
            missing.append((flag, exc.flag))
    return argv, missing


def profile_args(profile: Profile) -> tuple[str, ...]:
    """The profile's own arguments in the preferred spellings, ``extra_args`` last (no binary,
    port or host): what the MoE placement and the tuner read back."""
    argv, _ = render(lambda f: getattr(profile, f.key) if f.is_profile_key else None)
    return tuple(argv)


# -- reading one back -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """One of the table's flags in a command line."""

    key: str
    flag: str
    """As written (without a ``=value``)."""
    value: str | None
    """Its value; ``None`` for a switch, or a value flag with nothing after it."""
    on: bool
    """False for a switch's off form (``--no-mmap``, ``--load-mode none``)."""
    start: int
    stop: int
    """``args[start:stop]`` are the flag and its value."""


def _forms() -> Mapping[str, tuple[Flag, bool, bool]]:
    """Each spelling: its flag, whether it is the on form, whether it takes a value."""
    out: dict[str, tuple[Flag, bool, bool]] = {}
    for f in TABLE:
        for s in f.spellings:
            out[s] = (f, True, f.form in (Form.VALUE, Form.EACH))
        for s in f.off:
            out[s] = (f, False, False)
        for s in f.off_instead[0] if f.off_instead else ():
            out[s] = (f, False, True)
    return out


_FORMS = _forms()


def scan(args: Sequence[str]) -> list[Found]:
    """The table's flags in ``args``, in order: ``-f VALUE``, ``--flag=VALUE`` and switches.

    Other arguments are passed over (a value is taken to follow only a flag the table knows).
    """
    forms = _FORMS
    out: list[Found] = []
    i = 0
    while i < len(args):
        head, eq, inline = args[i].partition("=") if args[i].startswith("--") else (args[i], "", "")
        if head not in forms:
            i += 1
            continue
        flag, on, takes = forms[head]
        if eq:  # --flag=VALUE (llama.cpp reads it for long flags only)
            if takes:
                out.append(Found(flag.key, head, inline, on, i, i + 1))
            i += 1
            continue
        nxt = args[i + 1] if i + 1 < len(args) else None
        if takes and flag.choices and nxt not in flag.choices:
            takes = False  # a bare switch (older --flash-attn)
        width = 2 if takes and nxt is not None else 1
        out.append(Found(flag.key, head, nxt if width == 2 else None, on, i, i + width))
        i += width
    return out


def values(args: Sequence[str], key: str) -> list[str]:
    """The values given for ``key`` in ``args``, in order."""
    return [f.value for f in scan(args) if f.key == key and f.value is not None]


def strip(args: Sequence[str], keys: Sequence[str]) -> tuple[str, ...]:
    """``args`` without the flags of ``keys`` (every spelling and form) and their values."""
    drop = {i for f in scan(args) if f.key in keys for i in range(f.start, f.stop)}
    return tuple(a for i, a in enumerate(args) if i not in drop)
