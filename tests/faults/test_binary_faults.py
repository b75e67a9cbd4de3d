"""Server binaries and model files that are not what the config says: missing, not executable,
printing random bytes, hanging with a child; models that are devices, FIFOs, text files, cut
headers. Each is one line naming file, line and key (or the path), with a non-zero exit, never
a traceback, a hang or a process left behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import coder_tui.__main__ as cli_main
from coder_tui.core.errors import ServerError
from coder_tui.core.server import caps
from coder_tui.core.server.ports import free_port
from faults.conftest import Env, Fault
from faults.helpers import python, tiny_gguf, write_config

KNOWN = (
    "known keys: binary, host, port, ready_timeout_s, stop_grace_s, log_dir, allow_remote, "
    "api_key_env"
)


def _check(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli_main.main(["profiles", "check", "--config", str(config)])
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    return code, out.err.strip()


@pytest.mark.parametrize("kind", ["missing", "not-executable", "directory"])
def test_profiles_check_refuses_an_unusable_binary(
    fault: Fault, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    binary = tmp_path / "llama-server"
    if kind == "missing":
        binary = Path("/nonexistent/llama-server")
    elif kind == "not-executable":
        binary.write_text("#!/bin/sh\necho --port\n")
        binary.chmod(0o644)
    else:
        binary.mkdir()
    model = tiny_gguf(tmp_path / "m.gguf")
    config = write_config(tmp_path / "c.toml", binary, free_port(), model)
    code, err = _check(config, capsys)
    assert code == 2
    fault.no_orphans([], binary)
    fault.nothing_lost()
    fault.says(
        err,
        f"coder-tui: c.toml:2: server.binary: llama-server: configured binary {binary} does not "
        "exist or is not executable",
    )


def test_profiles_check_survives_a_binary_printing_random_bytes(
    fault: Fault, env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("FAKE_MODE", "junk_help")
    config = write_config(tmp_path / "c.toml", env.binary, free_port(), tiny_gguf(env.model))
    code, err = _check(config, capsys)
    assert code == 2
    fault.no_orphans([], env.binary)
    fault.nothing_lost()
    fault.says(
        err,
        f"coder-tui: c.toml:2: server.binary: {env.binary}: --help did not list llama-server "
        "options (its output is not text)",
    )


def test_serve_survives_a_binary_printing_random_bytes(
    fault: Fault, env: Env, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "c.toml", env.binary, free_port(), env.model)
    res = subprocess.run(
        python("-m", "coder_tui", "serve", "--config", str(config)),
        capture_output=True, text=True, timeout=60, env={**os.environ, "FAKE_MODE": "junk_help"},
    )  # fmt: skip
    assert res.returncode == 2 and "Traceback" not in res.stderr
    fault.no_orphans([], env.binary)
    fault.nothing_lost()
    fault.says(
        res.stderr.strip(),
        f"coder-tui: {env.binary}: --help did not list llama-server options (its output is not "
        "text)",
    )


def test_a_hung_probe_is_ended_with_its_children(
    fault: Fault, env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--help`` that forks a child and hangs: after the timeout both are gone (the child
    used to be left behind, reparented to init, on every run)."""
    monkeypatch.setenv("FAKE_MODE", "hang_help")
    started = time.monotonic()
    with pytest.raises(ServerError) as info:
        caps.probe(env.binary, None, timeout_s=1.5)
    assert time.monotonic() - started < 10
    fault.no_orphans([], env.binary)
    fault.nothing_lost()
    fault.says(
        str(info.value),
        f"{env.binary}: --help did not finish within 1.5 s; is it a llama-server?",
    )


@pytest.mark.parametrize("device", ["/dev/null", "/dev/zero"])
def test_a_device_as_model_is_refused(
    fault: Fault, env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str], device: str
) -> None:
    config = write_config(tmp_path / "c.toml", env.binary, free_port(), Path(device))
    code, err = _check(config, capsys)
    assert code == 2
    fault.no_orphans([], env.binary)
    fault.nothing_lost()
    fault.says(
        err,
        f"coder-tui: c.toml:8: profiles.p.model: expected a GGUF file, {device} is a device or "
        "socket",
    )


def test_a_fifo_as_model_is_refused_by_profiles_check(
    fault: Fault, env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    config = write_config(tmp_path / "c.toml", env.binary, free_port(), fifo)
    code, err = _check(config, capsys)
    assert code == 2
    fault.no_orphans([], env.binary)
    fault.nothing_lost()
    fault.says(
        err, f"coder-tui: c.toml:8: profiles.p.model: expected a GGUF file, {fifo} is a FIFO"
    )


def test_a_fifo_does_not_block_fit(fault: Fault, tmp_path: Path) -> None:
    """``fit`` on a FIFO used to wait forever for a writer; it is refused before opening."""
    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    res = subprocess.run(
        python("-m", "coder_tui", "fit", str(fifo), "--vram", "8GiB", "--no-fit-params"),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 2 and "Traceback" not in res.stderr
    fault.no_orphans([], fifo)
    fault.nothing_lost()
    fault.says(
        res.stderr.strip(), f"coder-tui: {fifo}: not a readable GGUF file: not a GGUF file (a FIFO)"
    )


@pytest.mark.parametrize("target", ["symlink-to-text", "dotdot-passwd", "cut-header"])
def test_a_model_that_is_not_gguf_fails_profiles_check(
    fault: Fault, env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str
) -> None:
    """Paths that exist but are no GGUF (a link to a system file, ``../../etc/passwd``, a header
    whose counts exceed the file) pass loading but not ``profiles check``: exit 2, one line."""
    import struct

    reason = "not a GGUF file (bad magic)"
    if target == "symlink-to-text":
        secret = tmp_path / "secret.txt"
        secret.write_text("root:x:0:0\n")
        model = tmp_path / "link.gguf"
        model.symlink_to(secret)
    elif target == "dotdot-passwd":
        model = Path("../" * 12 + "etc/passwd")
    else:
        model = tmp_path / "cut.gguf"
        model.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 1 << 30, 5) + b"x" * 10)
        reason = "tensor or key count exceeds the file"
    config = write_config(tmp_path / "c.toml", env.binary, free_port(), model)
    code, err = _check(config, capsys)
    assert code == 2
    shown = model if model.is_absolute() else tmp_path / model
    fault.no_orphans([], env.binary)
    fault.nothing_lost()
    fault.says(err, f"coder-tui: c.toml:8: profiles.p.model: cannot use {shown}: {reason}")


def test_a_good_binary_and_model_pass(
    fault: Fault, env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The control: the same checks pass a working binary and a readable GGUF (exit 0)."""
    config = write_config(tmp_path / "c.toml", env.binary, free_port(), tiny_gguf(env.model))
    code = cli_main.main(["profiles", "check", "--config", str(config)])
    out = capsys.readouterr()
    assert code == 0, out.err
    fault.no_orphans([], env.binary)
    fault.nothing_lost()
    fault.says(out.out.splitlines()[-1], f"all 1 profiles fit {env.binary} (version 9999 (fake))")


assert sys.platform.startswith("linux")
