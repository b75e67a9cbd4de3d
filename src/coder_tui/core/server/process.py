"""One llama-server child process: spawn from a profile, drain its output, wait ready, stop, reap.

Owns the process's whole life and emits typed events (``events.py``) to listeners. Readiness over
HTTP is ``health.py``'s; turning a profile into argv is ``profiles.py``'s; what the server accepts
is ``caps.py``'s. The child runs in its own process group (so a stop reaches any helper processes
it forks) and gets SIGTERM if coder-tui dies (Linux ``PR_SET_PDEATHSIG``). An API key
(``[server] api_key_env``) reaches it as ``LLAMA_API_KEY`` in its environment, never in argv, and
is redacted from every log line kept or written (``security.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from coder_tui.core.config.loader import Profile, ServerSettings
from coder_tui.core.connections import server_http
from coder_tui.core.errors import ServerError
from coder_tui.core.security import KEY_ENV, Redactor, server_secrets
from coder_tui.core.server import caps as caps_mod
from coder_tui.core.server.argv import build_argv
from coder_tui.core.server.binary import find_tool
from coder_tui.core.server.events import (
    Exited,
    LogLine,
    Ready,
    ServerEvent,
    ServerState,
    StateChanged,
)
from coder_tui.core.server.exitreason import explain_exit
from coder_tui.core.server.health import NotReady, wait_ready
from coder_tui.core.server.log_sink import LogSink
from coder_tui.core.server.ownership import (
    PortLock,
    RunRecord,
    clear_record,
    leftover,
    write_record,
)
from coder_tui.core.server.ports import port_holder, port_is_free

Listener = Callable[[ServerEvent], None]


class StartFailed(ServerError):
    """The server exited or timed out before it was ready; the message carries its last log lines."""


class PortOwned(ServerError):
    """Another coder-tui instance manages the server on this port."""


class LeftoverServer(ServerError):
    """A llama-server that an earlier coder-tui run started still holds the port."""

    def __init__(self, message: str, record: RunRecord) -> None:
        super().__init__(message)
        self.record = record


def _set_pdeathsig() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def base_url(settings: ServerSettings) -> str:
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"http://{host}:{settings.port}"


class ServerManager:
    """Starts and stops llama-server for profiles; one process at a time."""

    def __init__(
        self,
        settings: ServerSettings,
        *,
        log_dir: Path,
        cache_dir: Path | None = None,
        run_dir: Path | None = None,
        keep_on_exit: bool = False,
        ring_lines: int = 2000,
    ) -> None:
        self.settings = settings
        self.run_dir = run_dir
        self.keep_on_exit = keep_on_exit
        """Spawn without the parent-death signal, so ``detach`` can leave the server running."""
        self._started_at = 0.0
        self._port_lock = PortLock(run_dir, settings.port) if run_dir is not None else None
        self.log_dir = settings.log_dir or log_dir
        self.cache_dir = cache_dir
        self.url = base_url(settings)
        self.state = ServerState.STOPPED
        self.profile: Profile | None = None
        self.pid: int | None = None
        self.load_time_s: float | None = None
        self.version: str | None = None
        self.argv: list[str] = []
        self.log_path: Path | None = None
        self.log_lines: deque[str] = deque(maxlen=ring_lines)
        self._listeners: list[Listener] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._drains: list[asyncio.Task[None]] = []
        self._sink = LogSink(self.log_lines, self._log_line, lambda text: self._redact(text))
        self._stopping = False
        self._lock = asyncio.Lock()
        self._redact = Redactor()

    # -- listeners ---------------------------------------------------------------------------
    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with every event; returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _emit(self, event: ServerEvent) -> None:
        for listener in list(self._listeners):
            listener(event)

    def _set_state(self, state: ServerState) -> None:
        self.state = state
        self._emit(StateChanged(state, self.profile.name if self.profile else None, time.time()))

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    # -- start -------------------------------------------------------------------------------
    def prepare(self, profile: Profile) -> list[str]:
        """The argv that ``start`` would run for ``profile`` (finds and probes the binary)."""
        binary = find_tool("llama-server", self.settings.binary)
        caps = caps_mod.probe(binary, self.cache_dir)
        self.version = caps.version
        return build_argv(profile, self.settings, caps, str(binary))

    async def start(self, profile: Profile) -> Ready:
        """Spawn llama-server for ``profile`` and wait until ``/health`` answers 200."""
        async with self._lock:
            if self.running:
                raise ServerError(f"a server is already running (profile {self.profile_name})")
            argv = await asyncio.to_thread(self.prepare, profile)
            key_env = self._key_env()
            self._claim_port()
            if not port_is_free(self.settings.host, self.settings.port):
                raise ServerError(
                    f"port {self.settings.port} on {self.settings.host} is already taken by "
                    f"{port_holder(self.settings.port)}; stop it or set [server] port"
                )
            self.profile = profile
            self.argv = argv
            self.load_time_s = None
            self.log_lines.clear()
            self._stopping = False
            self._open_log(profile.name)
            env = {**os.environ, **dict(profile.env), **key_env}
            self._redact = Redactor(server_secrets({**dict(profile.env), **key_env}))
            self._set_state(ServerState.STARTING)
            spawned = time.monotonic()
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    env=env,
                    start_new_session=True,
                    preexec_fn=None if self.keep_on_exit else _set_pdeathsig,
                    limit=1 << 20,
                )
            except OSError as exc:
                self._close_log()
                self._set_state(ServerState.STOPPED)
                raise StartFailed(f"cannot run {argv[0]}: {exc}") from None
            self._proc = proc
            self.pid = proc.pid
            self._started_at = time.time()
            if self.run_dir is not None:
                with contextlib.suppress(OSError):
                    write_record(
                        self.run_dir,
                        RunRecord(
                            proc.pid,
                            self.settings.port,
                            tuple(argv),
                            str(profile.model),
                            time.time(),
                            os.getpid(),
                        ),
                    )
            assert proc.stdout is not None and proc.stderr is not None
            self._drains = [
                asyncio.create_task(self._drain(proc.stdout, "stdout")),
                asyncio.create_task(self._drain(proc.stderr, "stderr")),
            ]
            self._watcher = asyncio.create_task(self._watch(proc))
            self._set_state(ServerState.LOADING)
            try:
                async with server_http() as client:
                    await wait_ready(
                        client,
                        self.url,
                        alive=lambda: proc.returncode is None,
                        timeout_s=self.settings.ready_timeout_s,
                    )
            except NotReady as exc:
                reason = str(exc)
                if reason == "timeout":
                    await self._terminate(proc, kill_now=True)
                    msg = f"not ready after {self.settings.ready_timeout_s:g} s"
                else:
                    await self._settle(proc)
                    msg = explain_exit(proc.returncode, tuple(self.log_lines))
                tail = "\n".join(f"  | {line}" for line in list(self.log_lines)[-12:])
                raise StartFailed(f"llama-server ({profile.name}) {msg}\n{tail}".rstrip()) from None
            except asyncio.CancelledError:
                await self._terminate(proc, kill_now=True)
                raise
            self.load_time_s = time.monotonic() - spawned
            self._set_state(ServerState.READY)
            ready = Ready(profile.name, self.url, proc.pid, self.load_time_s)
            self._emit(ready)
            return ready

    def _key_env(self) -> dict[str, str]:
        """``{"LLAMA_API_KEY": key}`` from the variable ``[server] api_key_env`` names, if any."""
        name = self.settings.api_key_env
        if name is None:
            return {}
        key = os.environ.get(name)
        if not key:
            raise ServerError(
                f"[server] api_key_env is {name}, but ${name} is not set: "
                "export the API key in it before starting"
            )
        return {KEY_ENV: key}

    def _claim_port(self) -> None:
        """Take the port's lock and refuse a port that an earlier run's server still holds."""
        if self.run_dir is None or self._port_lock is None:
            return
        port = self.settings.port
        if not self._port_lock.acquire():
            holder = self._port_lock.holder()
            raise PortOwned(
                f"another coder-tui (pid {holder}) manages the server on port {port}; "
                f"watch it with: coder-tui --attach {self.url}"
            )
        record = leftover(self.run_dir, port)
        if record is not None:
            raise LeftoverServer(
                f"a llama-server from an earlier coder-tui run (pid {record.pid}, model "
                f"{Path(record.model).name}) still holds port {port}",
                record,
            )

    def detach(self) -> None:
        """Leave the server running on purpose (``--keep-server``): it is not stopped on close,
        its record is kept (marked) so a later start finds it, and the port lock is released.
        Only a manager made with ``keep_on_exit`` spawns servers that survive coder-tui."""
        if self.run_dir is not None and self._proc is not None and self.argv:
            with contextlib.suppress(OSError):
                write_record(
                    self.run_dir,
                    RunRecord(
                        self._proc.pid,
                        self.settings.port,
                        tuple(self.argv),
                        str(self.profile.model) if self.profile else "",
                        self._started_at,
                        os.getpid(),
                        keep=True,
                    ),
                )
        self._proc = None
        self.close()

    def close(self) -> None:
        """Release the port lock (the server must already be stopped or detached)."""
        if self._port_lock is not None:
            self._port_lock.release()

    @property
    def profile_name(self) -> str | None:
        return self.profile.name if self.profile else None

    # -- stop --------------------------------------------------------------------------------
    async def stop(self) -> None:
        """SIGTERM the process group, SIGKILL after ``stop_grace_s``, always reap.

        A server still loading is killed at once: it holds no state worth a clean shutdown.
        """
        proc = self._proc
        if proc is None:
            return
        loading = self.state in (ServerState.STARTING, ServerState.LOADING)
        if proc.returncode is None:
            self._stopping = True
            self._set_state(ServerState.STOPPING)
        await self._terminate(proc, kill_now=loading)

    async def _terminate(self, proc: asyncio.subprocess.Process, *, kill_now: bool) -> None:
        self._stopping = True
        if proc.returncode is None:
            self._signal_group(proc.pid, signal.SIGKILL if kill_now else signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout=self.settings.stop_grace_s)
            except asyncio.TimeoutError:
                self._signal_group(proc.pid, signal.SIGKILL)
                await proc.wait()
        # Helpers the server forked share its group: make sure none outlives it.
        self._signal_group(proc.pid, signal.SIGKILL)
        await self._settle(proc)

    @staticmethod
    def _signal_group(pgid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)

    async def _settle(self, proc: asyncio.subprocess.Process) -> None:
        """Wait for the watcher to record the exit (it reaps and drains)."""
        await proc.wait()
        if self._watcher is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._watcher)

    # -- background tasks ----------------------------------------------------------------------
    async def _drain(self, stream: asyncio.StreamReader, name: str) -> None:
        sink = self._sink
        while True:
            try:
                # Wake at least once a second so a count of lines not shown is not held back.
                raw = await asyncio.wait_for(stream.readline(), timeout=1.0)
            except asyncio.TimeoutError:
                sink.flush_dropped()
                continue
            except ValueError:  # a line longer than the limit: take what is there
                raw = await stream.read(1 << 20)
            if not raw:
                return
            sink.line(raw, name)

    async def _watch(self, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._drains), timeout=2.0)
        for task in self._drains:
            task.cancel()
        self._close_log()
        if self.run_dir is not None:
            clear_record(self.run_dir, self.settings.port, proc.pid)
        expected = self._stopping
        sig = -code if code < 0 else None
        reason = "stopped" if expected else explain_exit(code, tuple(self.log_lines))
        self._proc = None
        self.pid = None
        self._emit(
            Exited(
                self.profile_name,
                proc.pid,
                code,
                sig,
                expected,
                reason,
                tuple(list(self.log_lines)[-20:]),
            )
        )
        self._set_state(ServerState.STOPPED if expected else ServerState.CRASHED)

    # -- log file ------------------------------------------------------------------------------
    def _open_log(self, profile_name: str) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self._sink.open(self.log_dir / f"{stamp}-{profile_name}.log")
        self.log_path = self._sink.path

    def _close_log(self) -> None:
        self._sink.close()

    def _log_line(self, text: str, source: str) -> None:
        self._emit(LogLine(text, source, time.time()))
