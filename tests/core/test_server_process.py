"""ServerManager against the scripted fake server: start, ready, stop, crash, hang, orphans."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import psutil
import pytest

from coder_tui.core.config.loader import Profile, ServerSettings
from coder_tui.core.errors import ServerError, UserError
from coder_tui.core.server.events import Exited, Ready, ServerEvent, ServerState
from coder_tui.core.server.ports import free_port
from coder_tui.core.server.process import ServerManager, StartFailed


def _manager(tmp_path: Path, binary: Path, **kw: float) -> ServerManager:
    settings = ServerSettings(
        binary=binary,
        port=free_port(),
        ready_timeout_s=kw.get("ready_timeout_s", 10.0),
        stop_grace_s=kw.get("stop_grace_s", 5.0),
    )
    return ServerManager(settings, log_dir=tmp_path / "logs")


def _profile(tmp_path: Path, mode: str, **env: str) -> Profile:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    return Profile(name=f"p-{mode}", model=model, env={"FAKE_MODE": mode, **env})


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_start_ready_stop(tmp_path: Path, fake_server_binary: Path) -> None:
    mgr = _manager(tmp_path, fake_server_binary)
    events: list[ServerEvent] = []
    mgr.add_listener(events.append)
    ready = await mgr.start(_profile(tmp_path, "normal", FAKE_LOAD_S="0.4"))
    assert ready.load_time_s >= 0.4
    assert mgr.state is ServerState.READY
    assert "--metrics" in mgr.argv and "--port" in mgr.argv
    pid = ready.pid
    assert pid is not None and not _gone(pid)
    await mgr.stop()
    assert _gone(pid)
    assert mgr.state is ServerState.STOPPED
    states = [e.state for e in events if hasattr(e, "state")]
    assert states[:3] == [ServerState.STARTING, ServerState.LOADING, ServerState.READY]
    exits = [e for e in events if isinstance(e, Exited)]
    assert len(exits) == 1 and exits[0].expected
    assert any(isinstance(e, Ready) for e in events)
    assert mgr.log_path is not None and "server is listening" in mgr.log_path.read_text()


@pytest.mark.parametrize(
    ("mode", "reason"),
    [("crash_load", "failed to load the model"), ("oom_load", "out of GPU memory")],
)
async def test_early_exit_fails_fast_with_reason(
    tmp_path: Path, fake_server_binary: Path, mode: str, reason: str
) -> None:
    mgr = _manager(tmp_path, fake_server_binary, ready_timeout_s=60)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(StartFailed) as info:
        await mgr.start(_profile(tmp_path, mode))
    assert loop.time() - t0 < 10
    assert reason in str(info.value)
    assert "exited with code 1" in str(info.value)
    assert mgr.state is ServerState.CRASHED


async def test_hang_times_out_and_kills(tmp_path: Path, fake_server_binary: Path) -> None:
    mgr = _manager(tmp_path, fake_server_binary, ready_timeout_s=1.0)
    pids: list[int] = []
    mgr.add_listener(lambda e: pids.append(e.pid) if isinstance(e, Exited) else None)
    with pytest.raises(StartFailed, match="not ready after 1 s"):
        await mgr.start(_profile(tmp_path, "hang_load"))
    assert pids and _gone(pids[0])


async def test_stop_while_loading_kills_at_once(tmp_path: Path, fake_server_binary: Path) -> None:
    mgr = _manager(tmp_path, fake_server_binary, stop_grace_s=30)
    task = asyncio.create_task(mgr.start(_profile(tmp_path, "hang_load")))
    for _ in range(200):
        await asyncio.sleep(0.05)
        if mgr.state is ServerState.LOADING and mgr.pid:
            break
    pid = mgr.pid
    assert pid is not None
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await mgr.stop()
    assert loop.time() - t0 < 5
    with pytest.raises(StartFailed):
        await task
    assert _gone(pid)


async def test_sigterm_ignored_gets_sigkill(tmp_path: Path, fake_server_binary: Path) -> None:
    mgr = _manager(tmp_path, fake_server_binary, stop_grace_s=0.5)
    ready = await mgr.start(_profile(tmp_path, "ignore_term"))
    await mgr.stop()
    assert ready.pid is not None and _gone(ready.pid)


async def test_grandchild_does_not_survive(tmp_path: Path, fake_server_binary: Path) -> None:
    mgr = _manager(tmp_path, fake_server_binary)
    ready = await mgr.start(_profile(tmp_path, "grandchild"))
    assert ready.pid is not None
    kids = psutil.Process(ready.pid).children(recursive=True)
    assert kids
    await mgr.stop()
    await asyncio.sleep(0.2)
    assert all(_gone(k.pid) for k in kids)


async def test_crash_while_ready_is_reported(tmp_path: Path, fake_server_binary: Path) -> None:
    mgr = _manager(tmp_path, fake_server_binary)
    exits: list[Exited] = []
    mgr.add_listener(lambda e: exits.append(e) if isinstance(e, Exited) else None)
    ready = await mgr.start(_profile(tmp_path, "normal"))
    assert ready.pid is not None
    psutil.Process(ready.pid).kill()
    for _ in range(100):
        if exits:
            break
        await asyncio.sleep(0.05)
    assert exits and not exits[0].expected
    assert "SIGKILL" in exits[0].reason
    assert mgr.state is ServerState.CRASHED


async def test_port_taken_names_holder(tmp_path: Path, fake_server_binary: Path) -> None:
    mgr = _manager(tmp_path, fake_server_binary)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", mgr.settings.port))
        sock.listen()
        with pytest.raises(ServerError, match=r"already taken by .*python"):
            await mgr.start(_profile(tmp_path, "normal"))
    assert mgr.state is ServerState.STOPPED


async def test_old_server_flags_adapt(tmp_path: Path, fake_server_binary: Path) -> None:
    from dataclasses import replace

    mgr = _manager(tmp_path, fake_server_binary)
    profile = replace(_profile(tmp_path, "old_help"), flash_attn="on", mmap=False)
    # The caps come from the binary's --help: run it with the old help text.
    import os

    os.environ["FAKE_MODE"] = "old_help"
    try:
        argv = await asyncio.to_thread(mgr.prepare, profile)
    finally:
        del os.environ["FAKE_MODE"]
    fa = "--flash-attn" if "--flash-attn" in argv else "-fa"
    assert fa in argv and argv[argv.index(fa) + 1 :][:1] != ["on"]
    assert "--no-mmap" in argv
    with pytest.raises(UserError, match="n_cpu_moe needs --n-cpu-moe"):
        await asyncio.to_thread(mgr.prepare, replace(profile, n_cpu_moe=4))
