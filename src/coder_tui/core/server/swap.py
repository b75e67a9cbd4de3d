"""Hot-swap: replace the running llama-server with another profile's, one swap at a time.

Owns ``Swapper``, a serialized state machine over one ``ServerManager``: check the new profile
(argv, model file) while the old server still serves; if its argv and environment equal the running
server's, do nothing (``unchanged``); else stop the old server (reaped), wait for its VRAM to be
released (``vram.py``), start the new profile and wait until ready. A start that fails rolls back to
the previous profile, and the result says why, with the log lines that show it.

Concurrency policy: a request made while a swap runs is queued, and only the latest queued one
runs; requests it replaced end at once as ``superseded``. A running swap is never interrupted and
two swaps never interleave (one ``asyncio.Lock``).

Progress is typed events (``SwapProgress``, then one ``SwapResult``) to listeners or to a per-call
callback. Spawning, stopping and readiness are
``process.py``'s; argv is ``profiles.py``'s; the UI's picker and compare mode build on this.
"""

from __future__ import annotations

import asyncio
import enum
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from coder_tui.core.config.loader import Profile
from coder_tui.core.metrics.gpu import GpuProbe
from coder_tui.core.server.events import LogLine, ServerEvent, ServerState, StateChanged
from coder_tui.core.server.process import ServerManager
from coder_tui.core.server.vram import (
    VRAM_TOLERANCE_BYTES,
    VramBaseline,
    VramRelease,
    read_baseline,
    wait_released,
)

LOG_TAIL_LINES = 20
LOADED_MARKER = "model loaded"
LOADED_LINE_WAIT_S = 0.5
"""How long a ready server's ``model loaded`` line may still be on its way through the log pipe."""
"""What llama-server logs once the model is in memory (``llama_server: model loaded``; older
servers ``main: model loaded``), just before it serves."""
_LOG_STAMP = re.compile(r"^(\d+)\.(\d{2})\.(\d{3})\.(\d{3}) ")
"""llama.cpp's log prefix ``M.SS.mmm.uuu``: time since the server's logger started."""


class SwapPhase(str, enum.Enum):
    """Where a swap is; ``ready``, ``failed``, ``unchanged`` and ``superseded`` end one."""

    STOPPING = "stopping"
    RELEASING_VRAM = "releasing_vram"
    STARTING = "starting"
    LOADING = "loading"
    READY = "ready"
    ROLLING_BACK = "rolling_back"
    FAILED = "failed"
    UNCHANGED = "unchanged"
    SUPERSEDED = "superseded"


@dataclass(frozen=True)
class SwapProgress:
    """A swap entered ``phase``, ``elapsed_s`` after it began."""

    phase: SwapPhase
    profile_from: str | None
    profile_to: str
    elapsed_s: float
    detail: str | None = None
    """E.g. why the VRAM wait was skipped, or the reason a start failed."""


@dataclass(frozen=True)
class SwapResult:
    """How a swap ended. ``profile`` is what serves now (``None``: nothing does)."""

    ok: bool
    requested: str
    profile: str | None
    previous: str | None
    phases: tuple[tuple[SwapPhase, float], ...] = ()
    """Each timed phase and its seconds, in order (a rollback is one ``rolling_back`` entry)."""
    total_s: float = 0.0
    load_time_s: float | None = None
    """The new server's spawn to its first ``/health`` 200 (``ServerManager.load_time_s``)."""
    server_load_s: float | None = None
    """llama-server's own load time: the timestamp of its ``model loaded`` log line (time since
    its logger started), else that line's arrival after spawn; ``None`` if it never logged it."""
    overhead_s: float | None = None
    """``total_s`` minus ``server_load_s`` (or minus ``load_time_s`` without it): what the swap
    costs beyond loading the model."""
    error: str | None = None
    log_tail: tuple[str, ...] = ()
    """The failed start's last log lines (and the rollback's, if that failed too)."""
    rolled_back: bool = False
    unchanged: bool = False
    superseded: bool = False
    vram: VramRelease | None = None
    """The wait for the old server's VRAM (``None``: no server was running)."""


SwapEvent = SwapProgress | SwapResult
SwapListener = Callable[[SwapEvent], None]


@dataclass
class _Attempt:
    """What one ``ServerManager.start`` did, collected from its events."""

    phases: list[tuple[SwapPhase, float]] = field(default_factory=list)
    pid: int | None = None
    server_load_s: float | None = None
    error: str | None = None
    log_tail: tuple[str, ...] = ()


class Swapper:
    """Swaps ``manager``'s server between profiles; see the module docstring for the policy."""

    def __init__(
        self,
        manager: ServerManager,
        *,
        gpu: GpuProbe | None = None,
        vram_timeout_s: float = 30.0,
        poll_s: float = 0.05,
        vram_tolerance_bytes: int = VRAM_TOLERANCE_BYTES,
    ) -> None:
        self.manager = manager
        self.gpu = gpu
        self.vram_timeout_s = vram_timeout_s
        self.poll_s = poll_s
        self.vram_tolerance_bytes = vram_tolerance_bytes
        self.baseline: VramBaseline | None = None
        """Used VRAM before this swapper's last start (``None``: unknown, or no GPU)."""
        self._lock = asyncio.Lock()
        self._seq = 0
        self._listeners: list[SwapListener] = []

    # -- listeners ---------------------------------------------------------------------------
    def add_listener(self, listener: SwapListener) -> Callable[[], None]:
        """Call ``listener`` with every swap's events; returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    @property
    def busy(self) -> bool:
        """A swap is running (a new request would be queued)."""
        return self._lock.locked()

    # -- entry points ------------------------------------------------------------------------
    async def swap(self, to: Profile, on_event: SwapListener | None = None) -> SwapResult:
        """Make ``to`` the serving profile; never raises for a failed start (see ``SwapResult``).

        Cancelling it cancels the step in progress (a loading server is killed) without rollback.
        """
        self._seq += 1
        ticket = self._seq
        sinks = [*self._listeners, *([on_event] if on_event else [])]

        def emit(event: SwapEvent) -> None:
            for sink in sinks:
                sink(event)

        async with self._lock:
            if ticket != self._seq:  # a newer request came while this one waited
                now = self.manager.profile_name if self.manager.running else None
                emit(
                    SwapProgress(
                        SwapPhase.SUPERSEDED, now, to.name, 0.0, "a later swap replaced it"
                    )
                )
                result = SwapResult(
                    False, to.name, now, now, error="superseded by a later swap request",
                    superseded=True,
                )  # fmt: skip
            else:
                result = await self._run(to, emit)
            emit(result)
            return result

    # -- the state machine -------------------------------------------------------------------
    async def _run(self, to: Profile, emit: Callable[[SwapEvent], None]) -> SwapResult:
        mgr = self.manager
        t0 = time.monotonic()
        prev = mgr.profile if mgr.running else None
        prev_name = prev.name if prev else None

        def progress(phase: SwapPhase, detail: str | None = None) -> None:
            emit(SwapProgress(phase, prev_name, to.name, time.monotonic() - t0, detail))

        def fail(
            error: str,
            phases: tuple[tuple[SwapPhase, float], ...] = (),
            log_tail: tuple[str, ...] = (),
            *,
            rolled_back: bool = False,
            vram: VramRelease | None = None,
        ) -> SwapResult:
            progress(SwapPhase.FAILED, error)
            serving = mgr.profile_name if mgr.running else None
            total = time.monotonic() - t0
            return SwapResult(
                False, to.name, serving, prev_name, phases, total, error=error, log_tail=log_tail,
                rolled_back=rolled_back, vram=vram,
            )  # fmt: skip

        # Check the new profile while the old server still serves: a swap that cannot start
        # must not cost the user a working server.
        try:
            argv = await asyncio.to_thread(mgr.prepare, to)
        except Exception as exc:
            return fail(f"cannot start {to.name}: {exc}{_still(prev_name)}")
        if not to.model.is_file():
            return fail(
                f"cannot start {to.name}: model file not found: {to.model}{_still(prev_name)}"
            )
        if (
            prev is not None
            and mgr.state is ServerState.READY
            and argv == mgr.argv
            and dict(prev.env) == dict(to.env)
        ):
            same = "" if prev.name == to.name else f" as {prev.name}"
            progress(SwapPhase.UNCHANGED, f"same command line and environment{same}; no restart")
            return SwapResult(
                True, to.name, prev.name, prev.name, total_s=time.monotonic() - t0,
                load_time_s=mgr.load_time_s, unchanged=True,
            )  # fmt: skip

        phases: list[tuple[SwapPhase, float]] = []
        vram: VramRelease | None = None
        if mgr.running:
            old_pid = mgr.pid
            progress(SwapPhase.STOPPING)
            t = time.monotonic()
            await mgr.stop()
            phases.append((SwapPhase.STOPPING, time.monotonic() - t))
            vram = await self._release(old_pid, progress, phases)

        if self.gpu is not None and (vram is None or vram.status != "timeout"):
            # Re-read with nothing of ours running (other programs' use drifts); after a timeout
            # the reading would count what was not released, so the old baseline stays.
            self.baseline = await read_baseline(self.gpu) or self.baseline
        attempt = await self._start(to, progress)
        phases += attempt.phases
        total = time.monotonic() - t0
        if attempt.error is None:
            progress(SwapPhase.READY, f"ready in {total:.2f} s")
            loaded = attempt.server_load_s if attempt.server_load_s is not None else mgr.load_time_s
            return SwapResult(
                True, to.name, to.name, prev_name, tuple(phases), total, mgr.load_time_s,
                attempt.server_load_s, total - loaded if loaded is not None else None,
                vram=vram,
            )  # fmt: skip

        why = f"could not start {to.name}: {attempt.error}"
        if prev is None:
            return fail(why, tuple(phases), attempt.log_tail, vram=vram)
        progress(SwapPhase.ROLLING_BACK, why)
        t = time.monotonic()
        await mgr.stop()  # reaps whatever the failed start left (normally nothing)
        await self._release(attempt.pid, None, None)
        back = await self._start(prev, None)
        phases.append((SwapPhase.ROLLING_BACK, time.monotonic() - t))
        if back.error is None:
            return fail(
                f"{why}; rolled back to {prev.name}",
                tuple(phases),
                attempt.log_tail,
                rolled_back=True,
                vram=vram,
            )
        tail = (*attempt.log_tail, f"--- rollback to {prev.name} ---", *back.log_tail)
        return fail(
            f"{why}; rolling back to {prev.name} also failed: {back.error}; no server is running",
            tuple(phases),
            tail,
            vram=vram,
        )

    async def _release(
        self,
        pid: int | None,
        progress: Callable[[SwapPhase, str | None], None] | None,
        phases: list[tuple[SwapPhase, float]] | None,
    ) -> VramRelease:
        if progress is not None:
            progress(SwapPhase.RELEASING_VRAM, None)
        result = await wait_released(
            self.gpu,
            () if pid is None else (pid,),
            self.baseline,
            timeout_s=self.vram_timeout_s,
            poll_s=self.poll_s,
            tolerance_bytes=self.vram_tolerance_bytes,
        )
        if phases is not None:
            phases.append((SwapPhase.RELEASING_VRAM, result.waited_s))
        if progress is not None and result.status != "released":
            # A timeout is reported and the swap goes on: the old process is already reaped, so
            # what still holds memory is not ours, and a start that then runs out of memory
            # rolls back like any other failed start.
            progress(SwapPhase.RELEASING_VRAM, f"{result.status}: {result.reason}")
        return result

    async def _start(
        self, profile: Profile, progress: Callable[[SwapPhase, str | None], None] | None
    ) -> _Attempt:
        """``manager.start(profile)``, timing its phases from the manager's own events."""
        mgr = self.manager
        out = _Attempt()
        marks: dict[str, float] = {"starting": time.monotonic()}
        spawned_at: list[float] = []  # time.time() of the spawn, the clock LogLine uses

        def on_event(event: ServerEvent) -> None:
            if isinstance(event, StateChanged) and event.state is ServerState.LOADING:
                marks["loading"] = time.monotonic()
                spawned_at.append(event.at)
                out.pid = mgr.pid
                if progress is not None:
                    progress(SwapPhase.LOADING, None)
            elif isinstance(event, LogLine) and LOADED_MARKER in event.text and spawned_at:
                marks.setdefault("loaded_wall", event.at - spawned_at[0])

        if progress is not None:
            progress(SwapPhase.STARTING, None)
        remove = mgr.add_listener(on_event)
        ready_at: float | None = None
        try:
            await mgr.start(profile)
            ready_at = time.monotonic()
            # Still listening: an unstamped ``model loaded`` line counts from its arrival.
            out.server_load_s = await _logged_load_time(mgr, marks)
        except Exception as exc:  # StartFailed, a taken port, a vanished binary: all roll back
            lines = str(exc).splitlines()
            out.error = lines[0] if lines else type(exc).__name__
            out.log_tail = tuple(list(mgr.log_lines)[-LOG_TAIL_LINES:])
        finally:
            remove()
        end = ready_at if ready_at is not None else time.monotonic()
        loading = marks.get("loading")
        out.phases.append((SwapPhase.STARTING, (loading or end) - marks["starting"]))
        if loading is not None:
            out.phases.append((SwapPhase.LOADING, end - loading))
        return out


async def _logged_load_time(mgr: ServerManager, marks: dict[str, float]) -> float | None:
    """``server_load_time`` of a server that is ready, waiting up to ``LOADED_LINE_WAIT_S`` for
    its ``model loaded`` line: the server writes it before ``/health`` says 200, but the log
    reader may get it after that answer (a busy machine)."""
    deadline = time.monotonic() + LOADED_LINE_WAIT_S
    while (found := server_load_time(tuple(mgr.log_lines), marks.get("loaded_wall"))) is None:
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(0.02)
    return found


def server_load_time(lines: tuple[str, ...], arrival_s: float | None = None) -> float | None:
    """llama-server's own load time from its log: the ``M.SS.mmm.uuu`` stamp on the ``model
    loaded`` line, else ``arrival_s`` (when that line reached us, after spawn), else ``None``."""
    for line in lines:
        if LOADED_MARKER in line:
            m = _LOG_STAMP.match(line)
            if m:
                mins, secs, ms, us = (int(g) for g in m.groups())
                return mins * 60 + secs + ms / 1e3 + us / 1e6
            break
    return arrival_s


def _still(name: str | None) -> str:
    return f"; still serving {name}" if name else ""
