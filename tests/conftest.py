"""Suite-wide fixtures: isolated XDG directories, and a final check that no server outlives the run."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVER_MARKERS = ("llama-server", "fake_llama_server")


def _server_processes() -> list[psutil.Process]:
    """llama-server (real or fake) processes started by this test session."""
    me = os.getpid()
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "environ"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            if proc.pid == me or not any(m in cmd for m in SERVER_MARKERS):
                continue
            env = proc.info.get("environ") or {}
            if env.get("CODER_TUI_TEST_SESSION") == str(me):
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


@pytest.fixture(scope="session", autouse=True)
def _isolated_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """XDG dirs in a temp folder (nothing touches the real home); a session tag for the orphan scan."""
    base = tmp_path_factory.mktemp("xdg")
    saved = {
        k: os.environ.get(k)
        for k in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "CODER_TUI_CONFIG")
    }
    for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME"):
        os.environ[name] = str(base / name.lower())
    os.environ.pop("CODER_TUI_CONFIG", None)
    os.environ["CODER_TUI_TEST_SESSION"] = str(os.getpid())
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if any server process started by the tests is still alive."""
    left = _server_processes()
    if left:
        for proc in left:
            try:
                sys.stderr.write(
                    f"\norphaned server process: pid {proc.pid} {' '.join(proc.cmdline())}\n"
                )
                proc.kill()
            except psutil.Error:
                pass
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def fake_server_binary(tmp_path: Path) -> Path:
    """An executable that behaves like llama-server as scripted by FAKE_MODE (fault injection)."""
    script = ROOT / "tests" / "fakes" / "fake_llama_server.py"
    exe = tmp_path / "bin" / "llama-server"
    exe.parent.mkdir()
    exe.write_text(
        f"#!{sys.executable}\nimport runpy\nrunpy.run_path({str(script)!r}, run_name='__main__')\n"
    )
    exe.chmod(0o755)
    return exe


@pytest.fixture(autouse=True)
def _fresh_state_file() -> Iterator[None]:
    """Each test starts with no remembered state (theme, last profile): a theme chosen by one
    test must not leak into the next one's screens."""
    from coder_tui.core.paths import app_paths

    state = app_paths().state_file
    state.unlink(missing_ok=True)
    yield
    state.unlink(missing_ok=True)


def require_tool(name: str) -> Path:
    """A llama.cpp program, or skip; with CODER_TUI_REQUIRE_SERVER=1 (CI) a missing one fails."""
    from coder_tui.core.server.binary import BinaryNotFound, find_tool

    try:
        return find_tool(name)
    except BinaryNotFound as exc:
        if os.environ.get("CODER_TUI_REQUIRE_SERVER"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture(name="require_tool", scope="session")
def _require_tool_fixture() -> Callable[[str], Path]:
    """``require_tool`` for tests: ``require_tool("llama-quantize")``."""
    return require_tool
