"""What overrides what: ``extra_args`` over profile keys and coder-tui's own flags, ``env`` over
the loader, which API key agents are told to send, one rule for ``api_key_env`` and one for
loopback. Each is said in one line naming file, line and key; nothing is silently accepted."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import coder_tui.__main__ as cli_main
from coder_tui.core.config.key_checks import override_warnings
from coder_tui.core.config.loader import load_config
from coder_tui.core.errors import ConfigError
from coder_tui.core.server.ports import free_port
from faults.conftest import Env, Fault
from faults.helpers import python, tiny_gguf, write_config


def _config(env: Env, tmp_path: Path, profile_lines: str, server: str = "") -> Path:
    config = write_config(tmp_path / "c.toml", env.binary, free_port(), env.model, server)
    config.write_text(config.read_text() + profile_lines)
    return config


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        pytest.param(
            'extra_args = ["--port", "9999"]\n',
            "warning: c.toml:9: profiles.p.extra_args: --port replaces [server] port, which "
            "coder-tui passes itself and then watches; set that instead",
            id="port",
        ),
        pytest.param(
            'extra_args = ["--hf-repo", "someone/model"]\n',
            "warning: c.toml:9: profiles.p.extra_args: --hf-repo replaces the profile's model, "
            "which coder-tui passes itself and then watches; set that instead",
            id="hf-repo",
        ),
        pytest.param(
            'extra_args = ["-m", "/other.gguf"]\n',
            "warning: c.toml:9: profiles.p.extra_args: -m repeats the profile key `model`; "
            "extra_args come last, so `model` is ignored",
            id="model",
        ),
        pytest.param(
            'ctx = 4096\nextra_args = ["--ctx-size=8192"]\n',
            "warning: c.toml:10: profiles.p.extra_args: --ctx-size repeats the profile key `ctx`; "
            "extra_args come last, so `ctx` is ignored",
            id="ctx",
        ),
        pytest.param(
            'env = { LD_PRELOAD = "/tmp/evil.so" }\n',
            "warning: c.toml:9: profiles.p.env.LD_PRELOAD: changes which programs and libraries "
            "llama-server loads; remove it unless that is what you want",
            id="ld-preload",
        ),
        pytest.param(
            'env = { PATH = "/tmp/bin" }\n',
            "warning: c.toml:9: profiles.p.env.PATH: changes which programs and libraries "
            "llama-server loads; remove it unless that is what you want",
            id="path",
        ),
    ],
)
def test_overrides_are_warned_about(
    fault: Fault, env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str], lines: str,
    expected: str,
) -> None:  # fmt: skip
    tiny_gguf(env.model)
    config = _config(env, tmp_path, lines)
    original = config.read_bytes()
    warnings = override_warnings(load_config(config))
    assert cli_main.main(["profiles", "check", "--config", str(config)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert expected in printed  # profiles check prints it (serve and the TUI show the same)
    fault.no_orphans([], env.model)
    fault.nothing_lost(files={config: original})
    fault.says("\n".join(warnings), expected)


def test_a_flag_the_profile_does_not_set_is_no_override(
    fault: Fault, env: Env, tmp_path: Path
) -> None:
    """The control: ``--jinja`` in extra_args with no ``jinja`` key is a plain extra flag."""
    config = _config(env, tmp_path, 'extra_args = ["--jinja", "-c", "8192"]\n')
    warnings = override_warnings(load_config(config))
    fault.no_orphans([], env.model)
    fault.nothing_lost()
    fault.says(warnings[0] if warnings else None, None)


def test_serve_says_the_override_before_starting(fault: Fault, env: Env, tmp_path: Path) -> None:
    config = _config(
        env, tmp_path, 'env = { LD_LIBRARY_PATH = "/opt/x", FAKE_MODE = "crash_load" }\n'
    )
    res = subprocess.run(
        python("-m", "coder_tui", "serve", "--config", str(config)),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    first = res.stdout.splitlines()[0]
    fault.no_orphans([], env.model)
    fault.nothing_lost()
    fault.says(
        first,
        "[coder-tui] warning: c.toml:9: profiles.p.env.LD_LIBRARY_PATH: changes which programs "
        "and libraries llama-server loads; remove it unless that is what you want",
    )


def test_env_prints_the_key_the_server_checks(
    fault: Fault, env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With ``[server] api_key_env`` the server rejects ``sk-no-key-required``: agents must
    send the variable's key."""
    config = write_config(tmp_path / "c.toml", env.binary, free_port(), env.model,
                          'api_key_env = "MY_LLAMA_KEY"')  # fmt: skip
    assert cli_main.main(["env", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert 'export ANTHROPIC_AUTH_TOKEN="${MY_LLAMA_KEY}"' in lines
    assert not any("sk-no-key-required" in line for line in lines)
    fault.no_orphans([], env.model)
    fault.nothing_lost()
    fault.says(
        next(ln for ln in lines if ln.startswith("export OPENAI_API_KEY")),
        'export OPENAI_API_KEY="${MY_LLAMA_KEY}"',
    )


@pytest.mark.parametrize(
    ("table", "line"),
    [("chat", 10), ("server", 6)],
)
def test_both_api_key_envs_take_the_same_rule(
    fault: Fault, env: Env, tmp_path: Path, table: str, line: int
) -> None:
    """``[chat] api_key_env`` used to take any text that ``[server]`` refused."""
    config = write_config(tmp_path / "c.toml", env.binary, free_port(), env.model)
    text = config.read_text()
    if table == "chat":
        text += '[chat]\napi_key_env = "my key!"\n'
    else:
        text = text.replace("[server]\n", "[server]\n", 1).replace(
            "stop_grace_s = 3\n", 'stop_grace_s = 3\napi_key_env = "my key!"\n'
        )
    config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(config)
    fault.no_orphans([], env.model)
    fault.nothing_lost()
    fault.says(
        str(info.value),
        f"c.toml:{line}: {table}.api_key_env: expected an environment variable name (like "
        'MY_KEY), got "my key!"',
    )


@pytest.mark.parametrize("host", ["127.1", "0x7f.1", "[::ffff:127.0.0.1]"])
def test_export_accepts_every_loopback_spelling(
    fault: Fault, capsys: pytest.CaptureFixture[str], host: str
) -> None:
    args = ["export", "--url", "http://127.0.0.1:9", "--listen", f"{host}:0", "--duration", "0.2"]
    code = cli_main.main(args)
    out = capsys.readouterr()
    assert code == 0, out.err
    first = out.out.splitlines()[0]
    fault.no_orphans([])
    fault.nothing_lost()
    fault.says(first.rsplit(":", 1)[0], f"[coder-tui] serving metrics at http://{host}")


def test_export_refuses_a_wildcard_address(
    fault: Fault, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli_main.main(["export", "--url", "http://127.0.0.1:9", "--listen", "0.0.0.0:0"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    fault.no_orphans([])
    fault.nothing_lost()
    fault.says(
        err,
        "coder-tui: refusing to serve metrics on 0.0.0.0, which other machines can reach; pass "
        "--allow-remote to do it anyway (or listen on 127.0.0.1)",
    )
