"""Security faults: keys in readable files, remote hosts without keys, keys on the command line,
and an old llama-server. The key must reach the server only through its environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import coder_tui.__main__ as cli_main
from coder_tui.core.chat.client import ChatClient, StreamEnd
from coder_tui.core.chat.events import reply_end_notice
from coder_tui.core.config.key_checks import key_exposure_warning
from coder_tui.core.config.loader import load_config, parse_config
from coder_tui.core.errors import ConfigError, ServerError
from coder_tui.core.security import is_loopback
from coder_tui.core.server.ports import free_port
from faults.conftest import Env, Fault
from faults.helpers import manager, profile, python, spawn, stop, write_config

KEY = "sk-fault-suite-7f3a9c"


def test_config_with_a_key_readable_by_others(fault: Fault, env: Env, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", env.binary, free_port(), env.model)
    config.write_text(config.read_text() + f'env = {{ LLAMA_API_KEY = "{KEY}" }}\n')
    config.chmod(0o644)
    original = config.read_bytes()
    warning = key_exposure_warning(load_config(config))
    config.chmod(0o600)
    assert key_exposure_warning(load_config(config)) is None
    fault.no_orphans([], env.model)
    fault.nothing_lost(files={config: original})  # a warning never rewrites the user's file
    fault.says(
        warning,
        f"warning: {config} holds an API key (profiles.p.env.LLAMA_API_KEY) and other users "
        f"can read it (mode 0644); run: chmod 600 {config}",
    )


@pytest.mark.parametrize(
    ("extra", "line", "expected"),
    [
        pytest.param(
            'host = "0.0.0.0"',
            6,
            'server.host: "0.0.0.0" is not a loopback address: serving beyond this machine needs '
            "allow_remote = true and api_key_env (the variable holding an API key) in [server]",
            id="remote-host-without-key",
        ),
        pytest.param(
            'host = "192.168.1.20"\nallow_remote = true',
            6,
            'server.host: "192.168.1.20" is not a loopback address: serving beyond this machine '
            "needs api_key_env (the variable holding an API key) in [server]",
            id="remote-allowed-without-key",
        ),
    ],
)
def test_non_loopback_host_without_a_key(
    fault: Fault,
    env: Env,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: str,
    line: int,
    expected: str,
) -> None:
    config = write_config(tmp_path / "c.toml", env.binary, free_port(), env.model, extra)
    original = config.read_bytes()
    with pytest.raises(ConfigError) as info:
        load_config(config)
    code = cli_main.main(["serve", "--config", str(config)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"coder-tui: {info.value}"
    fault.no_orphans([], env.model)
    fault.nothing_lost(files={config: original})
    fault.says(str(info.value), f"c.toml:{line}: {expected}")


def test_api_key_in_extra_args_is_refused(fault: Fault, env: Env, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", env.binary, free_port(), env.model)
    config.write_text(config.read_text() + f'extra_args = ["--api-key", "{KEY}"]\n')
    original = config.read_bytes()
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert KEY not in str(info.value)
    fault.no_orphans([], env.model)
    fault.nothing_lost(files={config: original})
    fault.says(
        str(info.value),
        "c.toml:9: profiles.p.extra_args: --api-key would put the key on the command line, "
        "which every user can read; set [server] api_key_env instead",
    )


async def test_key_goes_by_environment_and_is_redacted(
    fault: Fault, env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """api_key_env: the server gets LLAMA_API_KEY in its environment, its argv and every log
    line are free of the key, and a client without the key is refused in one line."""
    monkeypatch.setenv("FAULT_SUITE_KEY", KEY)
    mgr = manager(env.binary, free_port(), tmp_path, api_key_env="FAULT_SUITE_KEY")
    ready = await mgr.start(profile(env.model))
    try:
        cmdline = Path(f"/proc/{ready.pid}/cmdline").read_bytes()
        environ = Path(f"/proc/{ready.pid}/environ").read_bytes().split(b"\0")
        async with ChatClient(mgr.url, KEY) as client:
            ok = [e async for e in client.stream_chat([{"role": "user", "content": "hi"}])]
        async with ChatClient(mgr.url) as client:
            refused = [e async for e in client.stream_chat([{"role": "user", "content": "hi"}])]
    finally:
        await mgr.stop()
    assert KEY.encode() not in cmdline
    assert f"LLAMA_API_KEY={KEY}".encode() in environ
    assert isinstance(ok[-1], StreamEnd) and ok[-1].status == "done"
    assert mgr.log_path is not None
    log = mgr.log_path.read_text()
    assert KEY not in log and KEY not in "\n".join(mgr.log_lines)
    end = refused[-1]
    assert isinstance(end, StreamEnd)
    fault.no_orphans([ready.pid], env.model)
    fault.nothing_lost(kept={mgr.log_path: "fake: LLAMA_API_KEY=[redacted]"})
    fault.says(reply_end_notice(end), "the server refused the reply: HTTP 401: Invalid API Key")


async def test_key_variable_not_set(
    fault: Fault, env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FAULT_SUITE_KEY", raising=False)
    mgr = manager(env.binary, free_port(), tmp_path, api_key_env="FAULT_SUITE_KEY")
    with pytest.raises(ServerError) as info:
        await mgr.start(profile(env.model))
    fault.no_orphans([], env.model)
    fault.nothing_lost()
    fault.says(
        str(info.value),
        "[server] api_key_env is FAULT_SUITE_KEY, but $FAULT_SUITE_KEY is not set: "
        "export the API key in it before starting",
    )


def test_old_llama_server_is_flagged(fault: Fault, env: Env, tmp_path: Path) -> None:
    """``serve`` names the known security fixes an old llama-server build lacks."""
    port = free_port()
    config = write_config(tmp_path / "c.toml", env.binary, port, env.model)
    argv = python("-m", "coder_tui", "serve", "--config", str(config))
    proc, lines = spawn(argv, FAKE_VERSION="5000 (0123abc)")
    try:
        warning = lines.wait("[coder-tui] warning:", 20)
        lines.wait("[coder-tui] ready at", 20)
        proc.terminate()
        assert proc.wait(15) == 0
        fault.no_orphans([proc.pid], env.model)
    finally:
        stop(proc)
    fault.nothing_lost()
    fault.says(
        warning,
        "[coder-tui] warning: llama-server build 5000 predates 4 known security fix(es) "
        "(gguf, server, tokenizer: CVE-2025-49847, CVE-2025-52566, CVE-2026-27940, "
        "CVE-2026-43629); update llama.cpp to build b9059 or newer",
    )


HOSTS = st.sampled_from(
    ["127.0.0.1", "localhost", "::1", "127.8.9.10", "0.0.0.0", "::", "10.0.0.2", "gpu-box",
     "127.0.0.1,0.0.0.0", "", "[::1]"]
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    host=HOSTS, allow=st.one_of(st.none(), st.booleans()), key=st.sampled_from([None, "K", "1x"])
)
def test_remote_rule_holds_for_any_server_table(
    host: str, allow: bool | None, key: str | None
) -> None:
    """Property: a config loads with a non-loopback host only when allow_remote is true and a
    valid api_key_env is set; otherwise it is one ConfigError, never another exception."""
    lines = ["[server]", f"host = {host!r}".replace("'", '"')]
    if allow is not None:
        lines.append(f"allow_remote = {str(allow).lower()}")
    if key is not None:
        lines.append(f'api_key_env = "{key}"')
    lines += ["[profiles.p]", 'model = "m.gguf"']
    try:
        config = parse_config("\n".join(lines) + "\n", Path("/x/c.toml"), check_files=False)
    except ConfigError as exc:
        assert all("\n" not in str(p) for p in exc.problems)
        return
    assert is_loopback(config.server.host) or (allow is True and key == "K")
    assert config.chat.api_key_env == config.server.api_key_env
