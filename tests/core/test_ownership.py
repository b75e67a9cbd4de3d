"""No orphans, one owner per port: pidfile records, the port lock, parent-death, leftovers."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from coder_tui.core.config.loader import Profile, ServerSettings
from coder_tui.core.server.ownership import (
    PortLock,
    leftover,
    read_record,
    stop_leftover,
)
from coder_tui.core.server.ports import free_port
from coder_tui.core.server.process import LeftoverServer, PortOwned, ServerManager

OWNER = Path(__file__).resolve().parent.parent / "fakes" / "owner_process.py"


def _gone(pid: int, within_s: float = 5.0) -> bool:
    end = time.monotonic() + within_s
    while time.monotonic() < end:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def _model(tmp_path: Path) -> Path:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    return model


def _owner(
    binary: Path, port: int, run_dir: Path, model: Path, *flags: str
) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, str(OWNER), str(binary), str(port), str(run_dir), str(model), *flags],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip(), "the owner process did not start its server"
    return proc, int(line)


async def test_record_written_and_cleared(tmp_path: Path, fake_server_binary: Path) -> None:
    settings = ServerSettings(binary=fake_server_binary, port=free_port())
    mgr = ServerManager(settings, log_dir=tmp_path / "logs", run_dir=tmp_path / "run")
    ready = await mgr.start(Profile(name="p", model=_model(tmp_path)))
    record = read_record(tmp_path / "run", settings.port)
    assert record is not None and record.pid == ready.pid
    await mgr.stop()
    assert read_record(tmp_path / "run", settings.port) is None
    mgr.close()


async def test_second_instance_cannot_own_the_port(
    tmp_path: Path, fake_server_binary: Path
) -> None:
    settings = ServerSettings(binary=fake_server_binary, port=free_port())
    run = tmp_path / "run"
    first = ServerManager(settings, log_dir=tmp_path / "l1", run_dir=run)
    await first.start(Profile(name="p", model=_model(tmp_path)))
    # Another process holds the lock file: simulate with a lock taken in a child process.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time; from pathlib import Path; "
            "from coder_tui.core.server.ownership import PortLock; "
            f"l=PortLock(Path({str(run)!r}), {settings.port + 1}); "
            "print(l.acquire(), flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "True"
        other = ServerManager(
            ServerSettings(binary=fake_server_binary, port=settings.port + 1),
            log_dir=tmp_path / "l2",
            run_dir=run,
        )
        with pytest.raises(PortOwned, match=f"pid {holder.pid}"):
            await other.start(Profile(name="p", model=_model(tmp_path)))
    finally:
        holder.kill()
        holder.wait()
        await first.stop()
        first.close()


def test_server_dies_with_its_owner(tmp_path: Path, fake_server_binary: Path) -> None:
    """coder-tui killed with SIGKILL: the parent-death signal takes the server down too."""
    owner, server_pid = _owner(fake_server_binary, free_port(), tmp_path / "run", _model(tmp_path))
    assert psutil.pid_exists(server_pid)
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    assert _gone(server_pid), "llama-server outlived coder-tui"


async def test_kept_server_is_found_and_stopped_next_time(
    tmp_path: Path, fake_server_binary: Path
) -> None:
    port, run = free_port(), tmp_path / "run"
    owner, server_pid = _owner(fake_server_binary, port, run, _model(tmp_path), "--keep", "--exit")
    owner.wait()
    try:
        assert psutil.pid_exists(server_pid)  # --keep-server: it stays on purpose
        record = leftover(run, port)
        assert record is not None and record.pid == server_pid
        mgr = ServerManager(
            ServerSettings(binary=fake_server_binary, port=port),
            log_dir=tmp_path / "logs",
            run_dir=run,
        )
        with pytest.raises(LeftoverServer, match=f"pid {server_pid}"):
            await mgr.start(Profile(name="p", model=_model(tmp_path)))
        assert await asyncio.to_thread(stop_leftover, record, run, 5.0)
        assert _gone(server_pid)
        ready = await mgr.start(Profile(name="p", model=_model(tmp_path)))
        assert ready.pid != server_pid
        await mgr.stop()
        mgr.close()
    finally:
        if psutil.pid_exists(server_pid):
            psutil.Process(server_pid).kill()


def test_a_reused_pid_is_never_taken_for_the_server(tmp_path: Path) -> None:
    from coder_tui.core.server.ownership import RunRecord, write_record

    run = tmp_path / "run"
    # A record naming a live process that is not a llama-server (this test process).
    import os

    write_record(run, RunRecord(os.getpid(), 1234, ("llama-server",), "m.gguf", time.time(), 1))
    assert leftover(run, 1234) is None
    assert read_record(run, 1234) is None  # the stale record is cleaned up


def test_port_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    a, b = PortLock(tmp_path, 9), PortLock(tmp_path, 9)
    assert a.acquire()
    assert a.acquire()  # idempotent for the holder
    # flock is per open file description: a second open in the same process conflicts too.
    assert not b.acquire()
    a.release()
    assert b.acquire()
    b.release()
