"""Typed events out of the server manager, consumed alike by the TUI and the headless commands."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ServerState(enum.Enum):
    """Where a managed (or attached) llama-server is in its life."""

    STOPPED = "stopped"
    STARTING = "starting"
    LOADING = "loading"
    READY = "ready"
    STOPPING = "stopping"
    CRASHED = "crashed"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class StateChanged:
    state: ServerState
    profile: str | None
    at: float
    detail: str = ""
    """Why, where it says more than the state (an attached server that cannot be reached: the
    connection error and when it is tried again)."""


@dataclass(frozen=True)
class LogLine:
    text: str
    stream: str
    """``stdout`` or ``stderr``."""
    at: float


@dataclass(frozen=True)
class Ready:
    profile: str | None
    url: str
    pid: int | None
    load_time_s: float
    """Seconds from spawn to the first ``/health`` 200 (``0`` when attached)."""


@dataclass(frozen=True)
class Exited:
    profile: str | None
    pid: int
    returncode: int | None
    signal: int | None
    expected: bool
    """True when coder-tui asked it to stop."""
    reason: str
    last_lines: tuple[str, ...]


ServerEvent = StateChanged | LogLine | Ready | Exited
