"""Process faults: coder-tui killed or hung up on, servers that misbehave, ports that are taken."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import select
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from coder_tui.core.errors import ServerError
from coder_tui.core.paths import app_paths
from coder_tui.core.server.events import Exited, ServerEvent
from coder_tui.core.server.ownership import leftover, stop_leftover
from coder_tui.core.server.ports import free_port
from coder_tui.core.server.process import LeftoverServer, PortOwned, StartFailed
from coder_tui.core.server.restart import RestartPolicy, interrupted_notice
from coder_tui.core.store.history import HistoryStore
from faults.conftest import Env, Fault
from faults.helpers import DRIVER, OWNER, manager, profile, python, spawn, stop, write_config

PROMPT = "write a long reply"
TOKENS = 3000
FULL = "".join(f"w{i} " for i in range(TOKENS))


def _history(db: Path) -> tuple[list, str | None]:  # type: ignore[type-arg]
    with HistoryStore(db) as store:
        notice = interrupted_notice(store.mark_interrupted())
        conv = store.last_conversation()
        assert conv is not None
        return store.messages(conv.id), notice


def _driver(env: Env, port: int, phase: str, **fake: str):  # type: ignore[no-untyped-def]
    argv = python(str(DRIVER), str(env.binary), str(port), str(env.run_dir), str(env.model))
    return spawn([*argv, str(env.db), phase], FAKE_MODE="normal", **fake)


def test_sigkill_while_loading(fault: Fault, env: Env) -> None:
    """coder-tui killed with SIGKILL while the model loads: PDEATHSIG takes the server down."""
    port = free_port()
    proc, lines = _driver(env, port, "load", FAKE_LOAD_S="60")
    try:
        server_pid = int(lines.wait("server ", 20).split()[1])
        assert psutil.pid_exists(server_pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        fault.no_orphans([server_pid, proc.pid], env.model)
    finally:
        stop(proc)
    stored, notice = _history(env.db)
    fault.nothing_lost(stored, prompts=[PROMPT])
    assert leftover(env.run_dir, port) is None  # the next start has nothing to clean up
    fault.says(notice, None)


def test_sigkill_while_generating(fault: Fault, env: Env) -> None:
    """Killed mid-reply: the server dies with it; the next start marks the reply interrupted and
    keeps every saved prefix."""
    port = free_port()
    proc, lines = _driver(
        env, port, "generate", FAKE_TOKENS=str(TOKENS), FAKE_TOKEN_DELAY_S="0.005"
    )
    try:
        server_pid = int(lines.wait("server ", 20).split()[1])
        while int(lines.wait("saved ", 20).split()[1]) < 60:
            pass
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        saved = [int(line.split()[1]) for line in lines.rest(2) if line.startswith("saved ")]
        fault.no_orphans([server_pid, proc.pid], env.model)
    finally:
        stop(proc)
    stored, notice = _history(env.db)
    reply = stored[-1]
    assert reply.status == "interrupted"
    assert FULL.startswith(reply.content) and len(reply.content) >= max(saved)
    fault.nothing_lost(stored, prompts=[PROMPT], prefixes=[FULL[: max(saved)]])
    fault.says(
        notice,
        "1 reply was cut off when coder-tui last stopped; the text so far is kept, "
        "marked interrupted",
    )


def _log_for(model: Path) -> Path:
    """The server log (in the XDG state dir) of the run that served ``model``."""
    for log in sorted(app_paths().log_dir.glob("*.log"), reverse=True):
        if str(model) in log.read_text(errors="replace"):
            return log
    return app_paths().log_dir / "missing.log"


def _wait_health(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"no server on port {port} after {timeout_s} s")


def _server_pids(model: Path) -> list[int]:
    out = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if str(model) in " ".join(proc.info["cmdline"] or []):
                out.append(proc.pid)
        except psutil.Error:
            continue
    return out


def _wait_exit(pid: int, timeout_s: float) -> int | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    return None


def _in_pty(argv: list[str]) -> tuple[int, int, list[bytes], threading.Event, threading.Thread]:
    pid, master = pty.fork()
    if pid == 0:  # the child: exec at once (no Python cleanup runs in a forked pytest)
        env = {**os.environ, "TERM": "xterm-256color", "FAKE_MODE": "normal"}
        os.execve(sys.executable, argv, env)
    out: list[bytes] = []
    done = threading.Event()

    def pump() -> None:  # a full pty would block the child's writes
        while not done.is_set():
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    return
                if not data:
                    return
                out.append(data)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    return pid, master, out, done, reader


def test_sighup_tui_under_pty(fault: Fault, env: Env, tmp_path: Path) -> None:
    """The SSH connection drops: the TUI's terminal goes away (pty master closed, SIGHUP). It
    stops the server and exits by itself, within its backstop."""
    port = free_port()
    config = write_config(tmp_path / "c.toml", env.binary, port, env.model)
    original = config.read_bytes()
    pid, master, out, done, reader = _in_pty(python("-m", "coder_tui", "--config", str(config)))
    code: int | None = None
    try:
        _wait_health(port, 30)
        servers = _server_pids(env.model)
        assert servers
        done.set()
        reader.join(2)
        os.close(master)  # the terminal is gone: the kernel sends SIGHUP to the session
        code = _wait_exit(pid, 20)
        fault.no_orphans([*servers, pid], env.model)
    finally:
        if code is None:
            os.kill(pid, signal.SIGKILL)
            _wait_exit(pid, 5)
    output = b"".join(out).decode("utf-8", "replace")
    fault.nothing_lost(files={config: original})
    summary = f"exited {code}" + (" with a traceback" if "Traceback" in output else "")
    fault.says(summary, "exited 0")


def test_sighup_serve_under_pty(fault: Fault, env: Env, tmp_path: Path) -> None:
    """``coder-tui serve`` in a terminal that hangs up: stops the server, says so, exits 0."""
    port = free_port()
    config = write_config(tmp_path / "c.toml", env.binary, port, env.model)
    argv = python("-m", "coder_tui", "serve", "--config", str(config))
    pid, master, out, done, reader = _in_pty(argv)
    code: int | None = None
    try:
        _wait_health(port, 20)
        servers = _server_pids(env.model)
        os.kill(pid, signal.SIGHUP)
        code = _wait_exit(pid, 15)
        time.sleep(0.2)
        done.set()
        reader.join(2)
        fault.no_orphans([*servers, pid], env.model)
    finally:
        if code is None:
            os.kill(pid, signal.SIGKILL)
            _wait_exit(pid, 5)
        os.close(master)
    lines = b"".join(out).decode("utf-8", "replace").splitlines()
    exited = [ln.strip() for ln in lines if "exited:" in ln]
    assert code == 0 and not any("Traceback" in ln for ln in lines)
    fault.nothing_lost(kept={_log_for(env.model): "server is listening"})
    fault.says(exited[-1] if exited else None, "[coder-tui] exited: stopped")


def test_sigterm_serve(fault: Fault, env: Env, tmp_path: Path) -> None:
    """``kill PID`` of a headless ``coder-tui serve``: a clean stop, one line, exit 0."""
    port = free_port()
    config = write_config(tmp_path / "c.toml", env.binary, port, env.model)
    proc, lines = spawn(python("-m", "coder_tui", "serve", "--config", str(config)))
    try:
        lines.wait("[coder-tui] ready at", 20)
        servers = _server_pids(env.model)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        seen = lines.rest(3)
        fault.no_orphans([*servers, proc.pid], env.model)
    finally:
        stop(proc)
    assert not any("Traceback" in line for line in seen)
    log = _log_for(env.model)
    fault.nothing_lost(kept={log: "server is listening"})
    fault.says(next(ln for ln in seen if "exited:" in ln), "[coder-tui] exited: stopped")


async def _start_stop(env: Env, mode: str, tmp_path: Path, **settings: float) -> list[Exited]:
    mgr = manager(env.binary, free_port(), tmp_path, **settings)
    exits: list[Exited] = []
    mgr.add_listener(lambda e: exits.append(e) if isinstance(e, Exited) else None)
    ready = await mgr.start(profile(env.model, mode))
    pids = [ready.pid, *_server_pids(env.model)]
    await asyncio.sleep(0.3)  # let the grandchild fork
    pids += _server_pids(env.model)
    t0 = time.monotonic()
    await mgr.stop()
    assert time.monotonic() - t0 < 5
    return exits


async def test_server_ignores_sigterm(fault: Fault, env: Env, tmp_path: Path) -> None:
    exits = await _start_stop(env, "ignore_term", tmp_path, stop_grace_s=0.5)
    fault.no_orphans([e.pid for e in exits], env.model)
    log = next((tmp_path / "logs").glob("*.log"))
    fault.nothing_lost(kept={log: "server is listening"})
    fault.says(exits[0].reason, "stopped")


async def test_server_forks_a_grandchild(fault: Fault, env: Env, tmp_path: Path) -> None:
    exits = await _start_stop(env, "grandchild", tmp_path)
    fault.no_orphans([e.pid for e in exits], env.model)  # the scan finds the grandchild too
    log = next((tmp_path / "logs").glob("*.log"))
    fault.nothing_lost(kept={log: "server is listening"})
    fault.says(exits[0].reason, "stopped")


async def test_server_hangs_loading(fault: Fault, env: Env, tmp_path: Path) -> None:
    mgr = manager(env.binary, free_port(), tmp_path, ready_timeout_s=1.0)
    seen: list[ServerEvent] = []
    mgr.add_listener(seen.append)
    with pytest.raises(StartFailed) as info:
        await mgr.start(profile(env.model, "hang_load"))
    fault.no_orphans([e.pid for e in seen if isinstance(e, Exited)], env.model)
    fault.nothing_lost(kept={next((tmp_path / "logs").glob("*.log")): "server is listening"})
    fault.says(str(info.value).splitlines()[0], "llama-server (p) not ready after 1 s")


async def test_port_already_taken(fault: Fault, env: Env, tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        mgr = manager(env.binary, port, tmp_path)
        with pytest.raises(ServerError) as info:
            await mgr.start(profile(env.model))
    fault.no_orphans([], env.model)
    fault.nothing_lost()
    me = psutil.Process()
    fault.says(
        str(info.value),
        f"port {port} on 127.0.0.1 is already taken by {me.name()} (pid {me.pid}); "
        "stop it or set [server] port",
    )


async def test_second_instance_cannot_own_the_port(fault: Fault, env: Env, tmp_path: Path) -> None:
    port = free_port()
    first = manager(env.binary, port, tmp_path, run_dir=env.run_dir)
    second = manager(env.binary, port, tmp_path, run_dir=env.run_dir)
    # flock is per open file: a second manager in this process is refused like another process.
    ready = await first.start(profile(env.model))
    try:
        with pytest.raises(PortOwned) as info:
            await second.start(profile(env.model))
    finally:
        await first.stop()
        first.close()
    fault.no_orphans([ready.pid], env.model)
    fault.nothing_lost()
    fault.says(
        str(info.value),
        f"another coder-tui (pid {os.getpid()}) manages the server on port {port}; "
        f"watch it with: coder-tui --attach http://127.0.0.1:{port}",
    )


async def test_kept_server_is_found_and_stopped(fault: Fault, env: Env, tmp_path: Path) -> None:
    """``--keep-server`` leaves the server on purpose; the next start names it and can stop it."""
    port = free_port()
    argv = python(str(OWNER), str(env.binary), str(port), str(env.run_dir), str(env.model))
    owner, lines = spawn([*argv, "--keep", "--exit"])
    server_pid = int(lines.wait("", 20))
    owner.wait(10)
    try:
        record = leftover(env.run_dir, port)
        assert record is not None and record.pid == server_pid
        mgr = manager(env.binary, port, tmp_path, run_dir=env.run_dir)
        with pytest.raises(LeftoverServer) as info:
            await mgr.start(profile(env.model))
        mgr.close()
        assert await asyncio.to_thread(stop_leftover, record, env.run_dir, 5.0)
        fault.no_orphans([server_pid, owner.pid], env.model)
    finally:
        if psutil.pid_exists(server_pid):
            psutil.Process(server_pid).kill()
    fault.nothing_lost()
    fault.says(
        str(info.value),
        f"a llama-server from an earlier coder-tui run (pid {server_pid}, model model.gguf) "
        f"still holds port {port}",
    )


async def test_restart_budget(fault: Fault, env: Env, tmp_path: Path) -> None:
    """A server that keeps crashing is restarted 3 times with backoff, then left stopped."""
    mgr = manager(env.binary, free_port(), tmp_path)
    policy = RestartPolicy(base_backoff_s=0.05)
    exits: list[Exited] = []
    crashed = asyncio.Event()

    def on_event(event: ServerEvent) -> None:
        if isinstance(event, Exited):
            exits.append(event)
            crashed.set()

    mgr.add_listener(on_event)
    delays = []
    while True:
        crashed.clear()
        with contextlib.suppress(StartFailed):  # a crash before /health said 200 counts too
            await mgr.start(profile(env.model, "crash_ready", FAKE_CRASH_AFTER_S="0.4"))
        await asyncio.wait_for(crashed.wait(), 10)
        delay = policy.next_delay()
        if delay is None:
            break
        delays.append(delay)
        await asyncio.sleep(delay)
        policy.record()
    assert delays == [0.05, 0.1, 0.2]
    assert [e.expected for e in exits] == [False] * 4
    assert exits[0].reason == "was killed by SIGSEGV (a crash inside llama-server)"
    fault.no_orphans([e.pid for e in exits], env.model)
    logs = sorted((tmp_path / "logs").glob("*.log"))
    fault.nothing_lost(kept={logs[-1]: "fake: crashing now"})
    fault.says(
        policy.refusal(),
        "llama-server crashed 4 times within 60 s; not restarting it again automatically: "
        "fix the cause, then restart it by hand",
    )
