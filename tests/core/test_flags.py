"""The profile-flag table: it agrees with the schema and the real server, and what it writes it
reads back (every key, any order, every spelling), so a new key needs only its entry."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path

import pytest
import tomli_w
from hypothesis import given
from hypothesis import strategies as st

from coder_tui.core.config import cmdline
from coder_tui.core.config.flags import (
    BY_KEY,
    PROFILE_KEYS,
    SPELLINGS,
    TABLE,
    Form,
    flag_text,
    profile_to_table,
)
from coder_tui.core.config.loader import Profile, parse_config
from coder_tui.core.config.reference import field_docs
from coder_tui.core.config.schema import Profile as SchemaProfile
from coder_tui.core.server.caps import MODERN_CAPS, parse_help

HELP = (Path(__file__).parent.parent / "fixtures" / "llama_server_help.txt").read_text()
OTHER_BUILDS = {"--no-mmap", "-nopo"}
"""Spellings the table keeps for builds other than the bundled one (older, or newer)."""


def _value_type(annotation: object) -> type:
    """``int | None`` -> int, ``Literal["on", ...] | None`` -> str, ``tuple[str, ...]`` -> tuple."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        (annotation,) = args
        return _value_type(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return type(typing.get_args(annotation)[0])
    origin = typing.get_origin(annotation)
    return origin if isinstance(origin, type) else annotation  # type: ignore[return-value]


def test_the_table_lists_the_schema_fields_in_order_with_their_types() -> None:
    hints = typing.get_type_hints(SchemaProfile)
    fields = [f.name for f in dataclasses.fields(SchemaProfile) if f.name != "name"]
    assert list(PROFILE_KEYS) == fields
    for key in fields:
        assert _value_type(hints[key]) is BY_KEY[key].value_type, key


def test_every_profile_key_is_documented_and_every_flag_is_known_to_the_real_server() -> None:
    docs = field_docs("Profile")
    assert [k for k in PROFILE_KEYS if not docs.get(k)] == []
    real = parse_help(HELP, "version: 1")
    assert sorted(s for s in SPELLINGS if not real.has(s)) == sorted(OTHER_BUILDS)
    assert MODERN_CAPS.flags >= SPELLINGS


def test_each_spelling_belongs_to_one_flag() -> None:
    seen = [s for f in TABLE for s in (*f.spellings, *f.off)]
    assert len(seen) == len(set(seen))
    assert all(f.pair is None or BY_KEY[f.pair].label is None for f in TABLE)


# -- written, then read back ----------------------------------------------------------------------

VALUES: dict[str, object] = {
    "model": Path("/m/a b.gguf"),
    "ctx": 4096,
    "n_gpu_layers": -1,
    "override_tensor": (r"blk\.0\.=CUDA0", "exps=CPU"),
    "n_cpu_moe": 3,
    "batch": 1024,
    "ubatch": 512,
    "cache_type_k": "q8_0",
    "cache_type_v": "q4_0",
    "flash_attn": "auto",
    "threads": 8,
    "port": 9000,
    "host": "127.0.0.1",
    "parallel": 2,
    "api_key": "not-a-real-key",
}


@pytest.mark.parametrize("key", [f.key for f in TABLE if f.form in (Form.VALUE, Form.EACH)])
def test_a_value_flag_reads_back_in_every_spelling_and_form(key: str) -> None:
    flag = BY_KEY[key]
    value = VALUES[key]
    items = [str(v) for v in value] if isinstance(value, tuple) else [str(value)]
    args = cmdline.flag_args(key, value)
    assert args[0] == flag.spellings[0]
    assert cmdline.values(args, key) == items
    for spelling in flag.spellings:
        written = [a for item in items for a in (spelling, item)]
        assert cmdline.values(["--verbose", *written, "--slots"], key) == items
        if spelling.startswith("--"):
            assert cmdline.values([f"{spelling}={i}" for i in items], key) == items
        assert cmdline.strip(["--verbose", *written, "--slots"], [key]) == ("--verbose", "--slots")


@pytest.mark.parametrize("key", [f.key for f in TABLE if f.form is Form.SWITCH])
def test_a_switch_reads_back_on_and_off(key: str) -> None:
    flag = BY_KEY[key]
    for value in (True, False):
        args = cmdline.flag_args(key, value)
        found = cmdline.scan(["-ngl", "5", *args])
        assert [(f.key, f.on) for f in found[1:]] == ([(key, value)] if args else [])
        assert cmdline.strip([*args, "-m", "x"], [key]) == ("-m", "x")
    # A switch takes no value: the next flag is read as a flag.
    if flag.spellings:
        assert cmdline.values([flag.spellings[0], "-ngl", "7"], "n_gpu_layers") == ["7"]


def test_a_value_that_looks_like_a_flag_is_a_value() -> None:
    assert cmdline.values(["-ngl", "-1", "-ot", "-ngl=CPU"], "n_gpu_layers") == ["-1"]
    assert cmdline.values(["-ot", "-ngl=CPU"], "override_tensor") == ["-ngl=CPU"]
    # an old bare --flash-attn is followed by another flag, not by its value
    assert cmdline.values(["--flash-attn", "-ngl", "3"], "n_gpu_layers") == ["3"]
    assert cmdline.values(["-fa", "on"], "flash_attn") == ["on"]
    dangling = cmdline.scan(["--n-cpu-moe"])
    assert [(f.key, f.value) for f in dangling] == [("n_cpu_moe", None)]
    assert cmdline.strip(["--mlock", "--n-cpu-moe"], ["n_cpu_moe"]) == ("--mlock",)


PROFILES = st.builds(
    Profile,
    name=st.just("p"),
    model=st.just(Path("/m.gguf")),
    ctx=st.none() | st.integers(1, 10**6),
    n_gpu_layers=st.none() | st.integers(-1, 99),
    override_tensor=st.lists(
        st.sampled_from([r"blk\.1\.=CPU", "exps=CUDA0", r"ffn_up_exps=CPU", "token_embd=CPU"]),
        max_size=3,
    ).map(tuple),
    n_cpu_moe=st.none() | st.integers(0, 99),
    ubatch=st.none() | st.integers(1, 4096),
    threads=st.none() | st.integers(1, 64),
    mmap=st.none() | st.booleans(),
    extra_args=st.sampled_from([(), ("--slots",), ("-ngl", "5", "-ot", "x=CPU")]),
)


@given(PROFILES)
def test_a_profile_reads_back_from_its_own_arguments(profile: Profile) -> None:
    args = cmdline.profile_args(profile)
    own = args[: len(args) - len(profile.extra_args)]  # extra_args come last, as they are
    for flag in TABLE:
        if not flag.is_profile_key or flag.form not in (Form.VALUE, Form.EACH):
            continue
        value = getattr(profile, flag.key)
        items = value if flag.form is Form.EACH else () if value is None else (value,)
        want = [str(v) for v in items]
        assert cmdline.values(own, flag.key) == want, flag.key
    assert args[len(own) :] == profile.extra_args
    # the explicit overrides come before --n-cpu-moe's: llama.cpp takes the first match
    keys = [f.key for f in cmdline.scan(own)]
    if profile.override_tensor and profile.n_cpu_moe is not None:
        assert keys.index("override_tensor") < keys.index("n_cpu_moe")


@given(PROFILES)
def test_a_saved_profile_loads_back_the_same(profile: Profile) -> None:
    table = profile_to_table(dataclasses.replace(profile, env={"A": "1"}, inherit="base"))
    assert "inherit" not in table
    text = tomli_w.dumps({"profiles": {"p": table}})
    loaded = parse_config(text, Path("/cfg/config.toml"), check_files=False).profile("p")
    assert loaded == dataclasses.replace(profile, env={"A": "1"})


def test_flag_text_says_how_each_key_is_passed() -> None:
    shown = {k: flag_text(BY_KEY[k]) for k in ("ctx", "override_tensor", "jinja", "mmap", "env")}
    assert shown == {
        "ctx": "`-c`",
        "override_tensor": "`-ot` per item",
        "jinja": "`--jinja` / `--no-jinja`",
        "mmap": "false: `--no-mmap` or `--load-mode none`",
        "env": "",
    }
