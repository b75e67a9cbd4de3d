"""The one loopback rule and the config key checks, without a server: every spelling of this
machine is loopback, nothing else is, and the same rule guards the config, ``--listen`` and the
quiet-reply choice."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coder_tui.core.chat.reply_mode import DecodeRun, quiet_next
from coder_tui.core.config.key_checks import key_exposure_warning, literal_keys
from coder_tui.core.config.loader import parse_config
from coder_tui.core.errors import ConfigError, UserError
from coder_tui.core.exporter.http import check_listen
from coder_tui.core.security import is_loopback, looks_secret, readable_by_others

LOOPBACK = [
    "127.0.0.1", "127.1", "127.8.9.10", "127.255.255.254", "0x7f.1", "2130706433",
    "127.000.000.001", "localhost", "LOCALHOST", "localhost.localdomain",
    "::1", "[::1]", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1", "::ffff:7f00:1", "[::ffff:127.0.0.1]",
    "127.0.0.1:8080", "127.1:80", "localhost:9464", "[::1]:8080", "[::ffff:127.0.0.1]:1",
    "127.0.0.1,::1", " localhost , [::1]:9 ",
]  # fmt: skip
NOT_LOOPBACK = [
    "", " ", "0.0.0.0", "::", "[::]:80", "10.0.0.2", "192.168.1.20", "128.0.0.1", "1.127.0.0.1",
    "gpu-box", "localhost.evil.example", "evil.localhost", "localhost.", "::2", "::ffff:10.0.0.1",
    "127.0.0.1,0.0.0.0", "127.0.0.1,", "127.0.0.1 evil", "127..1", "127.0.0.1.5", "127.256.0.1",
    "0x80.1", "4294967296", "127.0.0.1:", "127.0.0.1:123456", "localhost:abc", "[::1", "::1]",
    "[::1]:", "[0.0.0.0]:80", "::ffff:127.0.0.1:80", "127.0.0.1:\u0661\u0662", "\uff11\uff12\uff17.0.0.1",
]  # fmt: skip


@pytest.mark.parametrize("host", LOOPBACK)
def test_every_loopback_spelling_is_loopback(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", NOT_LOOPBACK)
def test_anything_else_is_not(host: str) -> None:
    assert not is_loopback(host)


@given(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255), st.integers(0, 255))
def test_dotted_quads_follow_the_first_byte(a: int, b: int, c: int, d: int) -> None:
    """Property: a dotted quad (with or without a port, or IPv4-mapped) is loopback iff it is in
    127.0.0.0/8."""
    quad = f"{a}.{b}.{c}.{d}"
    for host in (quad, f"{quad}:80", f"::ffff:{quad}", f"[::ffff:{quad}]:80"):
        assert is_loopback(host) == (a == 127), host


@pytest.mark.parametrize("host", ["127.1", "::ffff:127.0.0.1", "[::1]", "localhost"])
def test_the_same_rule_guards_config_listen_and_quiet_replies(host: str) -> None:
    text = f'[server]\nhost = "{host}"\n[profiles.p]\nmodel = "m.gguf"\n'
    assert parse_config(text, Path("/x/c.toml"), check_files=False).server.host == host
    check_listen(host.strip("[]"), allow_remote=False)
    fast = DecodeRun(tokens_per_second=300.0, cpu_saturated=True)
    url_host = f"[{host.strip('[]')}]" if ":" in host else host
    assert quiet_next(fast, 100.0, f"http://{url_host}:8080")


@pytest.mark.parametrize("host", ["0.0.0.0", "::ffff:10.0.0.1", "gpu-box"])
def test_the_same_rule_refuses_remote_hosts(host: str) -> None:
    text = f'[server]\nhost = "{host}"\n[profiles.p]\nmodel = "m.gguf"\n'
    with pytest.raises(ConfigError, match="not a loopback address"):
        parse_config(text, Path("/x/c.toml"), check_files=False)
    with pytest.raises(UserError, match="--allow-remote"):
        check_listen(host, allow_remote=False)
    fast = DecodeRun(tokens_per_second=300.0, cpu_saturated=True)
    url_host = f"[{host}]" if ":" in host else host
    assert not quiet_next(fast, 100.0, f"http://{url_host}:8080")


def test_literal_keys_and_the_exposure_warning(tmp_path: Path) -> None:
    assert looks_secret("LLAMA_API_KEY") and looks_secret("HF_TOKEN")
    assert not looks_secret("TOKENIZERS_PARALLELISM")
    path = tmp_path / "c.toml"
    path.write_text(
        '[profiles.p]\nmodel = "m.gguf"\n'
        'env = { LLAMA_API_KEY = "k-123", TOKENIZERS_PARALLELISM = "false", HF_TOKEN = "" }\n'
    )
    config = parse_config(path.read_text(), path, check_files=False)
    assert literal_keys(config) == ["profiles.p.env.LLAMA_API_KEY"]
    path.chmod(0o600)
    assert not readable_by_others(path) and key_exposure_warning(config) is None
    path.chmod(0o640)
    assert readable_by_others(path)
    assert key_exposure_warning(config) == (
        f"warning: {path} holds an API key (profiles.p.env.LLAMA_API_KEY) and other users can "
        f"read it (mode 0640); run: chmod 600 {path}"
    )
    assert not readable_by_others(tmp_path / "absent")
