"""Who owns a server port, and which llama-server an earlier coder-tui left running.

Two records under the run directory, per port:
- ``port-<port>.lock``: an ``flock`` held by the coder-tui instance that manages the server on that
  port, for as long as it runs. A second instance cannot take it and attaches read-only instead.
  The kernel drops the lock when the process dies, however it dies.
- ``server-<port>.json``: the server coder-tui started (pid, argv, model, start time), written when
  it spawns and removed when it is reaped. If coder-tui was killed before it could reap (SIGKILL,
  or ``--keep-server``), the next start finds the record and can check that the pid really is that
  llama-server (same executable name, same model argument, started no earlier than recorded)
  before offering to stop it: a reused pid is never signalled.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

import psutil

from coder_tui.core.atomic import write_text_atomic


@dataclass(frozen=True)
class RunRecord:
    """A llama-server that coder-tui started."""

    pid: int
    port: int
    argv: tuple[str, ...]
    model: str
    started_at: float
    owner_pid: int
    keep: bool = False
    """True when it was left running on purpose (``--keep-server``)."""


def record_path(run_dir: Path, port: int) -> Path:
    return run_dir / f"server-{port}.json"


def write_record(run_dir: Path, record: RunRecord) -> None:
    data = asdict(record)
    data["argv"] = list(record.argv)
    write_text_atomic(record_path(run_dir, record.port), json.dumps(data, indent=1))


def clear_record(run_dir: Path, port: int, pid: int) -> None:
    """Remove the record if it still names ``pid`` (a newer run may have replaced it)."""
    current = read_record(run_dir, port)
    if current is not None and current.pid == pid:
        with contextlib.suppress(OSError):
            record_path(run_dir, port).unlink()


def read_record(run_dir: Path, port: int) -> RunRecord | None:
    try:
        data = json.loads(record_path(run_dir, port).read_text())
        return RunRecord(
            pid=int(data["pid"]),
            port=int(data["port"]),
            argv=tuple(str(a) for a in data["argv"]),
            model=str(data["model"]),
            started_at=float(data["started_at"]),
            owner_pid=int(data["owner_pid"]),
            keep=bool(data.get("keep", False)),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_that_server(record: RunRecord) -> bool:
    """True when ``record.pid`` is still the llama-server the record describes."""
    try:
        proc = psutil.Process(record.pid)
        cmdline = proc.cmdline()
        created = proc.create_time()
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
    except psutil.Error:
        return False
    # The executable is argv[0], or argv[1] when an interpreter runs it (a script on a shebang).
    name = Path(record.argv[0]).name
    if not any(Path(arg).name == name for arg in cmdline[:2]):
        return False
    if record.model not in cmdline:
        return False
    return created <= record.started_at + 5.0


def leftover(run_dir: Path, port: int) -> RunRecord | None:
    """The server an earlier coder-tui left on ``port``, if it is really still running."""
    record = read_record(run_dir, port)
    if record is None:
        return None
    if record.owner_pid != os.getpid() and psutil.pid_exists(record.owner_pid):
        try:
            owner = psutil.Process(record.owner_pid)
            if "coder" in " ".join(owner.cmdline()) and not record.keep:
                return None  # its owner is alive and still manages it
        except psutil.Error:
            pass
    if is_that_server(record):
        return record
    with contextlib.suppress(OSError):
        record_path(run_dir, port).unlink()  # stale: the process is gone or is someone else
    return None


def stop_leftover(record: RunRecord, run_dir: Path, grace_s: float = 10.0) -> bool:
    """SIGTERM (then SIGKILL) a verified leftover server and its process group."""
    if not is_that_server(record):
        return False
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(record.pid, sig)
        try:
            psutil.Process(record.pid).wait(grace_s)
            break
        except psutil.TimeoutExpired:
            continue
        except psutil.Error:
            break
    clear_record(run_dir, record.port, record.pid)
    return not psutil.pid_exists(record.pid) or not is_that_server(record)


class PortLock:
    """An exclusive ``flock`` on ``port-<port>.lock``: one coder-tui manages a port at a time."""

    def __init__(self, run_dir: Path, port: int) -> None:
        self.path = run_dir / f"port-{port}.lock"
        self._fh: IO[str] | None = None

    def acquire(self) -> bool:
        """Take the lock if free; True on success. The file names the holder's pid."""
        if self._fh is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held for the app's life)
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return False
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()} {time.time():.0f}\n")
        fh.flush()
        self._fh = fh
        return True

    def holder(self) -> int | None:
        """The pid written by whoever holds (or last held) the lock."""
        try:
            return int(self.path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def release(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
