"""The one profile-flag table: every ``[profiles.NAME]`` key and the llama-server flag behind it.

``TABLE`` lists, in command-line order, every profile key and the few llama-server flags that
are no profile key but that coder-tui writes or reads (``--port``, ``--host``, ``--metrics``,
``--cpu-moe``, ``--parallel``, ``--no-op-offload``, ``--api-key``). Each ``Flag`` says

- the value's type and the check that validates it in the config (``loader.py`` reads
  ``PROFILE_KEYS``; the schema's ``Profile`` fields and their docs agree with the table, a test
  checks it);
- the flag's spellings, preferred first, and how a value goes on the command line (``Form``),
  with what another server build needs instead: ``--flash-attn`` as a bare switch, an off switch
  that the server lacks left out, ``--load-mode none`` where ``--no-mmap`` is gone;
- how it is read back from a command line or ``extra_args``: the spellings and whether each takes
  a value. ``cmdline.py`` writes and reads command lines by this table, for ``server/argv.py``,
  the MoE placement (``metrics/moe.py``), the tuner and the fit helpers (``tune/``);
- how it is shown: a label and format in ``profiles check`` (``summary``), the flag column of
  the config reference (``flag_text``), the state file's table (``profile_to_table``).

Adding a profile key is one ``Flag`` here plus its field (and doc) in ``schema.py``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coder_tui.core.config.fields import (
    Conv,
    Reader,
    boolean,
    env_table,
    integer,
    model_file,
    str_list,
    text_value,
)
from coder_tui.core.config.positions import KeyPath, show_value
from coder_tui.core.config.schema import Profile

CACHE_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")
"""KV cache types llama-server accepts for --cache-type-k / --cache-type-v."""
FLASH_ATTN_VALUES = ("on", "off", "auto")


class Form(enum.Enum):
    """How a value goes on the command line."""

    NONE = "none"
    """Not a flag (``env``, ``system_prompt``, ``inherit``)."""
    VALUE = "value"
    """``FLAG VALUE``."""
    SWITCH = "switch"
    """true: ``FLAG``; false: the off switch (or what the server has instead)."""
    EACH = "each"
    """``FLAG ITEM`` for each item of a list."""
    RAW = "raw"
    """The items as they are (``extra_args``)."""


@dataclass(frozen=True)
class Flag:
    """One profile key, or one flag coder-tui writes or reads that is no profile key."""

    key: str
    value_type: type
    """What a set value is (``None`` is "not set"); the schema's field has this type."""
    check: Conv | None
    """The config check; ``None`` for a flag that is no profile key."""
    form: Form = Form.NONE
    spellings: tuple[str, ...] = ()
    """The flag's spellings, preferred first: the first one the server knows is used."""
    off: tuple[str, ...] = ()
    """A switch's off spellings."""
    off_instead: tuple[tuple[str, ...], str] | None = None
    """Spellings and value passed for false where the server has no off switch."""
    off_is_default: bool = False
    """A server without the off switch has the feature off: false then passes nothing."""
    bare: str | None = None
    """The value passed as a bare switch where the server's flag takes no value (older builds);
    other values then pass nothing."""
    choices: tuple[str, ...] = ()
    """The values an optional-value flag takes (read-back tells them from the next flag)."""
    identity: bool = False
    """Says which profile this is, not how it is served: left out of diffs and saved tables."""
    label: str | None = None
    """Its label in the ``profiles check`` summary (none: not shown there)."""
    pair: str | None = None
    """A key shown with this one as ``a/b`` under this one's label."""
    show: Callable[[Any], str] = str
    """The value as the summary shows it."""

    @property
    def is_profile_key(self) -> bool:
        return self.check is not None


# -- checks of values that only mean something to llama-server -----------------------------------


def _cache_type(r: Reader, key: KeyPath, v: object) -> object:
    if isinstance(v, str) and v in CACHE_TYPES:
        return v
    return r.bad(key, f"expected one of {', '.join(CACHE_TYPES)}, got {show_value(v)}")


def _flash_attn(r: Reader, key: KeyPath, v: object) -> object:
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, str) and v in FLASH_ATTN_VALUES:
        return v
    return r.bad(key, f'expected "on", "off" or "auto" (or true/false), got {show_value(v)}')


def _extra_args(r: Reader, key: KeyPath, v: object) -> object:
    args = str_list(r, key, v)
    if not isinstance(args, tuple):
        return args
    for arg in args:
        head = arg.split("=", 1)[0]
        if head in API_KEY.spellings:
            return r.bad(
                key,
                "--api-key would put the key on the command line, which every user can read; "
                "set [server] api_key_env instead",
            )
        if head in HOST.spellings:
            return r.bad(key, "--host here would bypass the loopback check; set [server] host")
    return args


def _tensor_overrides(r: Reader, key: KeyPath, v: object) -> object:
    items = str_list(r, key, v)
    if not isinstance(items, tuple):
        return items
    for i, item in enumerate(items, 1):
        pattern, eq, buffer = item.partition("=")  # llama.cpp splits at the first "=" too
        if not (eq and pattern and buffer and item.isprintable()) or " " in buffer:
            return r.bad(
                key, f'expected PATTERN=BUFFER (like "exps=CPU"), item {i} is {show_value(item)}'
            )
        if "," in item:
            return r.bad(
                key,
                f"item {i} has a comma, where llama-server would split it: "
                "give each PATTERN=BUFFER as its own item",
            )
        try:
            re.compile(pattern)
        except re.error as exc:
            return r.bad(
                key, f"item {i}: {show_value(pattern)} is not a regular expression ({exc.msg})"
            )
    return items


# -- the table ------------------------------------------------------------------------------------

PORT = Flag("port", int, None, Form.VALUE, ("--port",))
HOST = Flag("host", str, None, Form.VALUE, ("--host",))
API_KEY = Flag("api_key", str, None, Form.VALUE, ("--api-key",))
"""Never written: the key reaches the server as ``LLAMA_API_KEY`` (argv is readable by all)."""

TABLE: tuple[Flag, ...] = (
    Flag("model", Path, model_file, Form.VALUE, ("-m", "--model")),
    PORT,
    Flag(
        "ctx", int, integer("> 0", lambda n: n > 0), Form.VALUE, ("-c", "--ctx-size"), label="ctx"
    ),
    Flag(
        "n_gpu_layers",
        int,
        integer(">= -1", lambda n: n >= -1),
        Form.VALUE,
        ("-ngl", "--n-gpu-layers", "--gpu-layers"),
        label="ngl",
    ),
    # Before --n-cpu-moe: llama.cpp tries overrides in command-line order, so these win.
    Flag(
        "override_tensor",
        tuple,
        _tensor_overrides,
        Form.EACH,
        ("-ot", "--override-tensor"),
        label="ot",
        show=",".join,
    ),
    Flag(
        "n_cpu_moe",
        int,
        integer(">= 0", lambda n: n >= 0),
        Form.VALUE,
        ("--n-cpu-moe", "-ncmoe"),
        label="n-cpu-moe",
    ),
    Flag(
        "batch",
        int,
        integer(">= 1", lambda n: n >= 1),
        Form.VALUE,
        ("-b", "--batch-size"),
        label="batch",
        pair="ubatch",
    ),
    Flag("ubatch", int, integer(">= 1", lambda n: n >= 1), Form.VALUE, ("-ub", "--ubatch-size")),
    Flag(
        "cache_type_k",
        str,
        _cache_type,
        Form.VALUE,
        ("--cache-type-k", "-ctk"),
        label="kv",
        pair="cache_type_v",
    ),
    Flag("cache_type_v", str, _cache_type, Form.VALUE, ("--cache-type-v", "-ctv")),
    Flag(
        "flash_attn",
        str,
        _flash_attn,
        Form.VALUE,
        ("--flash-attn", "-fa"),
        bare="on",
        choices=FLASH_ATTN_VALUES,
        label="fa",
    ),
    Flag(
        "cont_batching",
        bool,
        boolean,
        Form.SWITCH,
        ("--cont-batching", "-cb"),
        off=("--no-cont-batching", "-nocb"),
        off_is_default=True,
    ),
    Flag(
        "jinja", bool, boolean, Form.SWITCH, ("--jinja",), off=("--no-jinja",), off_is_default=True
    ),
    Flag(
        "threads",
        int,
        integer(">= 1 or -1", lambda n: n >= 1 or n == -1),
        Form.VALUE,
        ("-t", "--threads"),
        label="threads",
    ),
    HOST,
    Flag("metrics", bool, None, Form.SWITCH, ("--metrics",)),
    # mmap = true is the server's default and passes nothing.
    Flag(
        "mmap",
        bool,
        boolean,
        Form.SWITCH,
        off=("--no-mmap",),
        off_instead=(("--load-mode", "-lm"), "none"),
    ),
    Flag("extra_args", tuple, _extra_args, Form.RAW),
    Flag("env", Mapping, env_table),
    Flag("system_prompt", str, text_value),
    Flag("inherit", str, text_value, identity=True),
    # Read back from extra_args (and written by fit and tune), never from a profile key:
    Flag("cpu_moe", bool, None, Form.SWITCH, ("--cpu-moe", "-cmoe")),
    Flag("parallel", int, None, Form.VALUE, ("--parallel", "-np")),
    Flag("no_op_offload", bool, None, Form.SWITCH, ("--no-op-offload", "-nopo")),
    API_KEY,
)

BY_KEY: Mapping[str, Flag] = {f.key: f for f in TABLE}
_HF_MODEL = ("-hf", "-hfr", "--hf-repo", "-hff", "--hf-file", "-mu", "--model-url")
OWN_FLAGS: Mapping[str, str] = {
    **{s: "[server] port" for s in PORT.spellings},
    **{s: "the profile's model" for s in (*_HF_MODEL, "-dr", "--docker-repo")},
}
"""Flags in ``extra_args`` that replace what coder-tui itself passes (and then watches)."""
PROFILE_KEYS: dict[str, Conv] = {f.key: f.check for f in TABLE if f.check is not None}
"""What ``loader.py`` validates a ``[profiles.NAME]`` table with."""
SPELLINGS = frozenset(
    s for f in TABLE for s in (*f.spellings, *f.off, *(f.off_instead[0] if f.off_instead else ()))
)
"""Every spelling the table knows (what a current llama-server accepts of these)."""


# -- showing a profile ----------------------------------------------------------------------------


def summary(profile: Profile) -> list[str]:
    """``label value`` for each labelled key the profile sets, in table order."""
    out = []
    for flag in TABLE:
        if flag.label is None:
            continue
        value = getattr(profile, flag.key)
        if flag.pair is not None:
            other = getattr(profile, flag.pair)
            if value is None and other is None:
                continue
            shown = [
                BY_KEY[k].show(v) if v is not None else "-"
                for k, v in ((flag.key, value), (flag.pair, other))
            ]
            out.append(f"{flag.label} {'/'.join(shown)}")
        elif value is not None and value != ():
            out.append(f"{flag.label} {flag.show(value)}")
    return out


def flag_text(flag: Flag) -> str:
    """The flag as the config reference shows it (Markdown)."""
    first = f"`{flag.spellings[0]}`" if flag.spellings else ""
    if flag.form is Form.EACH:
        return f"{first} per item"
    if flag.form is Form.SWITCH:
        off = [f"`{flag.off[0]}`"] if flag.off else []
        if flag.off_instead is not None:
            off.append(f"`{flag.off_instead[0][0]} {flag.off_instead[1]}`")
        if not first:
            return "false: " + " or ".join(off)
        return " / ".join([first, *off[:1]])
    if flag.form is Form.RAW:
        return "as given, last"
    return first


def profile_to_table(profile: Profile) -> dict[str, Any]:
    """A resolved profile as a ``[profiles.NAME]`` table of config keys (for the state file)."""
    table: dict[str, Any] = {}
    for flag in TABLE:
        if not flag.is_profile_key or flag.identity:
            continue
        value = getattr(profile, flag.key)
        if value is None or value == () or value == {}:
            continue
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, Mapping):
            value = dict(value)
        table[flag.key] = value
    return table
