"""Config loading: one fixture file per failure, inherit, paths, the key locator, and fuzzing."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import MappingProxyType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coder_tui.core.config import loader as config_module
from coder_tui.core.config.loader import Config, Profile, ServerSettings, load_config, parse_config
from coder_tui.core.config.positions import KeyLocator, decode_error_position, render_key
from coder_tui.core.errors import ConfigError, UserError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "config"
EXAMPLE = Path(__file__).parent.parent.parent / "config.example.toml"
FIXTURE_FILES = sorted(FIXTURES.glob("*.toml"))


def expected_lines(fixture: Path) -> list[str]:
    """The ``# expect: ...`` lines at the top of a fixture (read as bytes: one is not UTF-8)."""
    out = []
    for raw in fixture.read_bytes().splitlines():
        line = raw.decode("ascii")  # the expect lines themselves are plain ASCII
        if not line.startswith("# expect: "):
            break
        out.append(line.removeprefix("# expect: "))
    return out


def load_fixture(fixture: Path, tmp_path: Path) -> Config:
    """Load a copy of ``fixture`` next to an (empty) model.gguf and a models/ directory."""
    (tmp_path / "model.gguf").write_bytes(b"")
    (tmp_path / "models").mkdir()
    copy = tmp_path / fixture.name
    shutil.copyfile(fixture, copy)
    return load_config(copy)


def test_there_is_a_fixture_per_failure_mode() -> None:
    assert len(FIXTURE_FILES) >= 15
    for fixture in FIXTURE_FILES:
        assert expected_lines(fixture), f"{fixture.name} has no '# expect:' line"


@pytest.mark.parametrize("fixture", FIXTURE_FILES, ids=lambda p: p.stem)
def test_fixture_reports_exactly_the_expected_lines(fixture: Path, tmp_path: Path) -> None:
    expected = [line.replace("{dir}", str(tmp_path)) for line in expected_lines(fixture)]
    with pytest.raises(ConfigError) as info:
        load_fixture(fixture, tmp_path)
    assert str(info.value).splitlines() == expected
    assert [str(p) for p in info.value.problems] == expected


def test_several_problems_in_one_file_are_all_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_fixture(FIXTURES / "many_problems.toml", tmp_path)
    keys = [p.key for p in info.value.problems]
    assert keys == [
        "default_profile",
        "server.port",
        "server.colour",
        "profiles.iq2.n_cpu_moe",
        "profiles.iq2.flash_attn",
        "profiles.iq3.ctxx",
        "profiles.iq3.ubatch",
    ]
    lines = [p.line for p in info.value.problems]
    assert lines == sorted(lines)


def test_config_error_is_a_user_error() -> None:
    with pytest.raises(UserError):
        parse_config("[profiles.a]\nctx = 0\n", Path("config.toml"))


# -- reading the file -----------------------------------------------------------------------------


def test_missing_file_is_one_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "config.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert problem.line is None and problem.key is None
    assert str(problem) == f"config.toml: cannot read {path}: no such file or directory"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert str(info.value) == f"{tmp_path.name}: cannot read {tmp_path}: is a directory"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[profiles.a]\nmodel = "m.gguf"\n')
    path.chmod(0)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"config.toml: cannot read {path}: permission denied"


def test_syntax_error_at_end_of_document() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("[profiles.a]\nmodel = ", Path("config.toml"))
    assert str(info.value) == "config.toml:2: invalid TOML at column 9: Invalid value"


# -- values ---------------------------------------------------------------------------------------


def parse(text: str, path: Path = Path("/cfg/config.toml")) -> Config:
    return parse_config(text, path, check_files=False)


def test_the_example_config_loads() -> None:
    config = load_config(EXAMPLE, check_files=False)
    assert config.default_profile == "iq2_xxs"
    assert set(config.profiles) == {"iq2_xxs", "iq3_xxs"}
    assert config.server == ServerSettings(port=8084)
    iq2 = config.profile()
    assert iq2.model == EXAMPLE.parent.absolute() / "Qwen3-Coder-Next-UD-IQ2_XXS.gguf"
    assert (iq2.ctx, iq2.n_gpu_layers, iq2.n_cpu_moe, iq2.threads) == (200000, 42, 10, 16)
    assert (iq2.cache_type_k, iq2.cache_type_v, iq2.flash_attn) == ("q4_0", "q4_0", "on")


def test_defaults_for_an_almost_empty_file() -> None:
    config = parse('[profiles.only]\nmodel = "m.gguf"\n')
    assert config.server == ServerSettings()
    assert config.profile() == Profile(name="only", model=Path("/cfg/m.gguf"))
    assert config.default_profile is None


def test_flash_attn_accepts_booleans() -> None:
    config = parse(
        '[profiles.a]\nmodel="m"\nflash_attn=true\n[profiles.b]\nmodel="m"\nflash_attn=false\n'
    )
    assert config.profiles["a"].flash_attn == "on"
    assert config.profiles["b"].flash_attn == "off"


def test_accepted_edge_values() -> None:
    text = """
[server]
port = 1
ready_timeout_s = 0.5
stop_grace_s = 3
[profiles.a]
model = "m"
n_gpu_layers = -1
threads = -1
n_cpu_moe = 0
batch = 512
ubatch = 512
extra_args = ["--slots", "--parallel", "2"]
"""
    config = parse(text)
    assert config.server.port == 1
    assert config.server.stop_grace_s == 3.0 and isinstance(config.server.stop_grace_s, float)
    a = config.profiles["a"]
    assert (a.n_gpu_layers, a.threads, a.n_cpu_moe) == (-1, -1, 0)
    assert a.extra_args == ("--slots", "--parallel", "2")


def test_mappings_are_read_only() -> None:
    config = parse('[profiles.a]\nmodel = "m"\nenv = { A = "1" }\n')
    env = config.profiles["a"].env
    assert isinstance(env, MappingProxyType)
    with pytest.raises(TypeError):
        env["B"] = "2"  # type: ignore[index]
    with pytest.raises(TypeError):
        config.profiles["b"] = config.profiles["a"]  # type: ignore[index]


# -- inherit --------------------------------------------------------------------------------------


def test_inherit_chain_takes_unset_keys_and_merges_env() -> None:
    text = """
[profiles.base]
model = "base.gguf"
ctx = 8192
threads = 8
env = { A = "base", B = "base" }

[profiles.mid]
inherit = "base"
ctx = 16384
env = { B = "mid", C = "mid" }

[profiles.top]
inherit = "mid"
model = "top.gguf"
env.C = "top"
"""
    config = parse(text)
    top = config.profiles["top"]
    assert top.model == Path("/cfg/top.gguf")
    assert (top.ctx, top.threads) == (16384, 8)
    assert dict(top.env) == {"A": "base", "B": "mid", "C": "top"}
    assert top.inherit == "mid"
    mid = config.profiles["mid"]
    assert mid.model == Path("/cfg/base.gguf")
    assert dict(mid.env) == {"A": "base", "B": "mid", "C": "mid"}
    assert config.profiles["base"].inherit is None


def test_inherit_order_in_file_does_not_matter() -> None:
    config = parse(
        '[profiles.child]\ninherit = "parent"\n[profiles.parent]\nmodel = "p"\nctx = 9\n'
    )
    assert config.profiles["child"].ctx == 9


def test_self_inherit_is_a_cycle() -> None:
    with pytest.raises(ConfigError) as info:
        parse('[profiles.a]\nmodel = "m"\ninherit = "a"\n')
    assert str(info.value) == "config.toml:3: profiles.a.inherit: inherit cycle: a -> a"


def test_ubatch_check_points_at_the_child_that_broke_it() -> None:
    text = (
        '[profiles.a]\nmodel = "m"\nbatch = 2048\nubatch = 2048\n'
        '[profiles.b]\ninherit = "a"\nbatch = 512\n'
    )
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert (
        str(info.value) == "config.toml:7: profiles.b.batch: ubatch (2048) must be <= batch (512)"
    )


# -- paths ----------------------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_config_directory() -> None:
    text = (
        '[server]\nbinary = "bin/llama-server"\nlog_dir = "logs"\n'
        '[profiles.a]\nmodel = "../m.gguf"\n'
    )
    config = parse(text, Path("/etc/coder/config.toml"))
    assert config.server.binary == Path("/etc/coder/bin/llama-server")
    assert config.server.log_dir == Path("/etc/coder/logs")
    assert config.profiles["a"].model == Path("/etc/coder/../m.gguf")


def test_home_is_expanded_and_absolute_paths_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/tester")
    text = (
        '[server]\nlog_dir = "~/logs"\n'
        '[profiles.a]\nmodel = "~/models/m.gguf"\n'
        '[profiles.b]\nmodel = "/abs/m.gguf"\n'
    )
    config = parse(text)
    assert config.server.log_dir == Path("/home/tester/logs")
    assert config.profiles["a"].model == Path("/home/tester/models/m.gguf")
    assert config.profiles["b"].model == Path("/abs/m.gguf")


def test_load_config_makes_paths_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    (tmp_path / "config.toml").write_text('[profiles.a]\nmodel = "m.gguf"\n')
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("config.toml"))
    assert config.profiles["a"].model == tmp_path / "m.gguf"
    assert config.path == tmp_path / "config.toml"


def test_check_files_false_skips_the_model_check(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[profiles.a]\nmodel = "absent.gguf"\n')
    assert load_config(tmp_path / "config.toml", check_files=False).profile().name == "a"
    with pytest.raises(ConfigError, match=r"absent\.gguf does not exist"):
        load_config(tmp_path / "config.toml")


# -- Config.profile -------------------------------------------------------------------------------


def test_profile_selection() -> None:
    two = parse('[profiles.a]\nmodel = "m"\n[profiles.b]\nmodel = "m"\n')
    assert two.profile("b").name == "b"
    with pytest.raises(UserError, match=r"several profiles and no default_profile.*a, b"):
        two.profile()
    with pytest.raises(UserError) as info:
        two.profile("bb")
    assert str(info.value) == 'no profile named "bb"; did you mean "b"? profiles: a, b'
    with_default = parse(
        'default_profile = "b"\n[profiles.a]\nmodel="m"\n[profiles.b]\nmodel="m"\n'
    )
    assert with_default.profile().name == "b"
    assert parse('[profiles.solo]\nmodel = "m"\n').profile().name == "solo"
    empty = Config(path=None, server=ServerSettings(), profiles={})
    with pytest.raises(UserError, match="no profiles"):
        empty.profile()


# -- the key locator ------------------------------------------------------------------------------


def test_locator_finds_headers_keys_dotted_and_inline_keys() -> None:
    text = """# comment
top = 1
[profiles.iq2]
model = "m"  # trailing comment
notes = \"\"\"
fake = 1
[not.a.header]
\"\"\"
list = [
  "a",  # comment
  { x = 1 },
]
env = { A = "1", "B.C" = { D = 2 } }
[ profiles . "quoted key" ]
sub.key = 3
[[arr.items]]
k = 'v'
"""
    loc = KeyLocator(text)
    assert loc.line(("top",)) == 2
    assert loc.line(("profiles", "iq2")) == 3
    assert loc.line(("profiles",)) == 3
    assert loc.line(("profiles", "iq2", "model")) == 4
    assert loc.line(("profiles", "iq2", "notes")) == 5
    assert loc.line(("fake",)) is None
    assert loc.line(("not", "a", "header")) is None
    assert loc.line(("profiles", "iq2", "list")) == 9
    assert loc.line(("profiles", "iq2", "env", "A")) == 13
    assert loc.line(("profiles", "iq2", "env", "B.C", "D")) == 13
    assert loc.line(("profiles", "quoted key")) == 14
    assert loc.line(("profiles", "quoted key", "sub", "key")) == 15
    assert loc.line(("arr", "items", "k")) == 17
    # Unknown keys fall back to the nearest parent that is in the file.
    assert loc.line(("profiles", "iq2", "absent")) == 3
    assert loc.line(("nowhere",)) is None


def test_render_key_quotes_what_is_not_bare() -> None:
    assert render_key(("profiles", "iq2_xxs", "n_cpu_moe")) == "profiles.iq2_xxs.n_cpu_moe"
    assert render_key(("profiles", "", "a b", 'q"')) == r'profiles.""."a b"."q\""'


def test_decode_error_position_from_tomllib() -> None:
    tomllib = config_module.tomllib  # tomllib, or tomli on Python 3.10
    with pytest.raises(tomllib.TOMLDecodeError) as info:
        tomllib.loads("a = 1\n[b\n")
    assert decode_error_position(info.value, "a = 1\n[b\n") == (
        2,
        3,
        "Expected ']' at the end of a table declaration",
    )
    assert decode_error_position(ValueError("odd"), "") == (None, None, "odd")


# -- robustness -----------------------------------------------------------------------------------

_FRAGMENTS = [
    "[server]",
    "[profiles.a]",
    "[profiles.b]",
    '[profiles.""]',
    "[profiles]",
    "[[profiles.c]]",
    'default_profile = "a"',
    'model = "m.gguf"',
    'model = "~/x"',
    'model = "\\u0000"',
    "port = 99999",
    "port = true",
    'inherit = "a"',
    'inherit = "b"',
    "batch = 8",
    "ubatch = 16",
    "ctx = -1",
    "n_cpu_moe = 1.5",
    "flash_attn = false",
    "ready_timeout_s = nan",
    "ready_timeout_s = inf",
    "env = { A = 1, B = { C = 2 } }",
    'env = { "" = "x", "A=B" = "y" }',
    'extra_args = ["a", 2, []]',
    "profiles.z.model = 1979-05-27",
    'server = "x"',
    "profiles = []",
    'a.b.c = """x\ny"""',
]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_arbitrary_text_raises_only_config_error(text: str) -> None:
    with contextlib.suppress(ConfigError):
        parse_config(text, Path("/nonexistent/config.toml"))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=12), st.booleans())
def test_toml_like_documents_raise_only_config_error(lines: list[str], check: bool) -> None:
    text = "\n".join(lines)
    try:
        config = parse_config(text, Path("/nonexistent/config.toml"), check_files=check)
    except ConfigError as exc:
        assert exc.problems
        assert all(str(p).startswith("config.toml") for p in exc.problems)
    else:
        assert config.profiles


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary())
def test_arbitrary_bytes_raise_only_config_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.toml"
        path.write_bytes(data)
        with contextlib.suppress(ConfigError):
            load_config(path)


def test_core_config_does_not_import_textual_or_rich() -> None:
    code = (
        "import sys, coder_tui.core.config.loader, coder_tui.core.server.argv\n"
        "import coder_tui.core.config.positions\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')]\n"
        "assert not bad, bad\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
