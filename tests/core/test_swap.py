"""Swapper against the scripted fake server and a fake NVML: phases, rollback, queueing, VRAM."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pytest

from coder_tui.core.config.loader import Profile, ServerSettings
from coder_tui.core.metrics.gpu import GpuProbe
from coder_tui.core.server.events import ServerState
from coder_tui.core.server.ports import free_port
from coder_tui.core.server.process import ServerManager
from coder_tui.core.server.swap import (
    SwapEvent,
    Swapper,
    SwapPhase,
    SwapProgress,
    server_load_time,
)

GiB = 1 << 30


def _gone(pid: int | None) -> bool:
    assert pid is not None
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _profile(tmp_path: Path, name: str, mode: str = "normal", **env: str) -> Profile:
    model = tmp_path / f"{name}.gguf"
    model.write_bytes(b"GGUF")
    return Profile(name=name, model=model, env={"FAKE_MODE": mode, "FAKE_LOAD_S": "0.1", **env})


@pytest.fixture
async def mgr(tmp_path: Path, fake_server_binary: Path) -> AsyncIterator[ServerManager]:
    settings = ServerSettings(
        binary=fake_server_binary, port=free_port(), ready_timeout_s=10.0, stop_grace_s=5.0
    )
    manager = ServerManager(settings, log_dir=tmp_path / "logs")
    yield manager
    await manager.stop()


def _phases(events: list[SwapEvent], to: str | None = None) -> list[SwapPhase]:
    return [
        e.phase
        for e in events
        if isinstance(e, SwapProgress) and (to is None or e.profile_to == to)
    ]


def _serving(mgr: ServerManager, name: str) -> None:
    assert mgr.state is ServerState.READY and mgr.profile_name == name
    assert mgr.pid is not None and not _gone(mgr.pid)


# -- the happy paths -------------------------------------------------------------------------------
async def test_start_from_nothing_then_a_to_b(tmp_path: Path, mgr: ServerManager) -> None:
    a, b = _profile(tmp_path, "a"), _profile(tmp_path, "b")
    swapper = Swapper(mgr)
    events: list[SwapEvent] = []
    swapper.add_listener(events.append)

    first = await swapper.swap(a)
    assert first.ok and first.profile == "a" and first.previous is None and first.vram is None
    assert [p for p, _ in first.phases] == [SwapPhase.STARTING, SwapPhase.LOADING]
    assert _phases(events) == [SwapPhase.STARTING, SwapPhase.LOADING, SwapPhase.READY]
    pid_a = mgr.pid

    events.clear()
    result = await swapper.swap(b)
    assert result.ok and not result.rolled_back and result.error is None
    assert (result.requested, result.profile, result.previous) == ("b", "b", "a")
    assert [p for p, _ in result.phases] == [
        SwapPhase.STOPPING,
        SwapPhase.RELEASING_VRAM,
        SwapPhase.STARTING,
        SwapPhase.LOADING,
    ]
    assert all(s >= 0 for _, s in result.phases)
    assert result.load_time_s is not None and result.load_time_s >= 0.1
    assert result.overhead_s is not None and 0 <= result.overhead_s < result.total_s
    assert sum(s for _, s in result.phases) <= result.total_s + 0.01
    assert result.vram is not None and result.vram.status == "skipped"
    assert _phases(events) == [
        SwapPhase.STOPPING,
        SwapPhase.RELEASING_VRAM,
        SwapPhase.RELEASING_VRAM,  # the second says why it was skipped
        SwapPhase.STARTING,
        SwapPhase.LOADING,
        SwapPhase.READY,
    ]
    assert events[-1] == result
    progress = [e for e in events if isinstance(e, SwapProgress)]
    assert all(e.profile_from == "a" and e.profile_to == "b" for e in progress)
    assert [e.elapsed_s for e in progress] == sorted(e.elapsed_s for e in progress)
    assert _gone(pid_a)
    _serving(mgr, "b")


async def test_unchanged_does_nothing(tmp_path: Path, mgr: ServerManager) -> None:
    a = _profile(tmp_path, "a")
    swapper = Swapper(mgr)
    await swapper.swap(a)
    pid = mgr.pid
    events: list[SwapEvent] = []
    for same in (a, replace(a, name="a-again", system_prompt="only the chat differs")):
        result = await swapper.swap(same, events.append)
        assert result.ok and result.unchanged and result.phases == ()
        assert result.profile == "a" and mgr.pid == pid
    assert _phases(events) == [SwapPhase.UNCHANGED, SwapPhase.UNCHANGED]
    assert "no restart" in (events[0].detail if isinstance(events[0], SwapProgress) else "")

    # An environment change does need a restart.
    result = await swapper.swap(replace(a, env={**a.env, "CUDA_VISIBLE_DEVICES": "0"}))
    assert result.ok and not result.unchanged and mgr.pid != pid
    assert _gone(pid)


# -- failures and rollback -----------------------------------------------------------------------
async def test_missing_model_keeps_the_old_server(tmp_path: Path, mgr: ServerManager) -> None:
    a = _profile(tmp_path, "a")
    swapper = Swapper(mgr)
    await swapper.swap(a)
    pid = mgr.pid
    missing = replace(_profile(tmp_path, "b"), model=tmp_path / "missing.gguf")
    result = await swapper.swap(missing)
    assert not result.ok and result.profile == "a" and not result.rolled_back
    assert result.error is not None
    assert "model file not found" in result.error and "missing.gguf" in result.error
    assert "still serving a" in result.error
    assert mgr.pid == pid  # checked before stopping anything: no downtime at all
    _serving(mgr, "a")


@pytest.mark.parametrize(
    ("mode", "cause", "log"),
    [
        ("crash_load", "failed to load the model", "error loading model"),
        ("oom_load", "ran out of GPU memory", "cudaMalloc failed"),
    ],
)
async def test_failed_load_rolls_back(
    tmp_path: Path, mgr: ServerManager, mode: str, cause: str, log: str
) -> None:
    swapper = Swapper(mgr)
    await swapper.swap(_profile(tmp_path, "a"))
    pid_a = mgr.pid
    events: list[SwapEvent] = []
    result = await swapper.swap(_profile(tmp_path, "b", mode), events.append)
    assert not result.ok and result.rolled_back
    assert (result.requested, result.profile, result.previous) == ("b", "a", "a")
    assert result.error is not None and cause in result.error
    assert result.error.startswith("could not start b: ") and "rolled back to a" in result.error
    assert any(log in line for line in result.log_tail)
    assert _phases(events)[-2:] == [SwapPhase.ROLLING_BACK, SwapPhase.FAILED]
    assert [p for p, _ in result.phases][-1] is SwapPhase.ROLLING_BACK
    assert _gone(pid_a)
    _serving(mgr, "a")


async def test_hang_during_load_times_out_and_rolls_back(
    tmp_path: Path, fake_server_binary: Path
) -> None:
    settings = ServerSettings(binary=fake_server_binary, port=free_port(), ready_timeout_s=1.0)
    mgr = ServerManager(settings, log_dir=tmp_path / "logs")
    try:
        swapper = Swapper(mgr)
        await swapper.swap(_profile(tmp_path, "a"))
        hung: list[int] = []
        remove = mgr.add_listener(
            lambda e: (
                hung.append(mgr.pid) if getattr(e, "state", None) is ServerState.LOADING else None
            )
        )
        result = await swapper.swap(_profile(tmp_path, "b", "hang_load"))
        remove()
        assert not result.ok and result.rolled_back
        assert result.error is not None and "not ready after 1 s" in result.error
        assert hung[0] is not None and _gone(hung[0])
        _serving(mgr, "a")
    finally:
        await mgr.stop()


async def test_failed_start_with_nothing_running(tmp_path: Path, mgr: ServerManager) -> None:
    result = await Swapper(mgr).swap(_profile(tmp_path, "b", "crash_load"))
    assert not result.ok and not result.rolled_back and result.profile is None
    assert result.error is not None and "failed to load the model" in result.error
    assert "rolled back" not in result.error
    assert mgr.state is ServerState.CRASHED


async def test_rollback_that_fails_says_both(
    tmp_path: Path, mgr: ServerManager, fake_server_binary: Path
) -> None:
    swapper = Swapper(mgr)
    await swapper.swap(_profile(tmp_path, "a"))
    # From now on every server this binary runs fails to load (its --help still answers).
    text = fake_server_binary.read_text().replace(
        "import runpy", "import os, runpy\nos.environ['FAKE_MODE'] = 'crash_load'"
    )
    fake_server_binary.write_text(text)
    result = await swapper.swap(_profile(tmp_path, "b"))
    assert not result.ok and not result.rolled_back and result.profile is None
    assert result.error is not None
    assert "could not start b" in result.error and "rolling back to a also failed" in result.error
    assert "no server is running" in result.error
    assert "--- rollback to a ---" in result.log_tail
    assert not mgr.running


# -- concurrency ---------------------------------------------------------------------------------
async def test_two_swaps_at_once_never_interleave(tmp_path: Path, mgr: ServerManager) -> None:
    swapper = Swapper(mgr)
    await swapper.swap(_profile(tmp_path, "a"))
    log: list[tuple[str, str]] = []
    swapper.add_listener(
        lambda e: log.append(
            (e.profile_to, e.phase.value) if isinstance(e, SwapProgress) else (e.requested, "end")
        )
    )
    mgr.add_listener(
        lambda e: log.append(("server", e.state.value)) if hasattr(e, "state") else None
    )
    rb, rc = await asyncio.gather(
        swapper.swap(_profile(tmp_path, "b")), swapper.swap(_profile(tmp_path, "c"))
    )
    assert rb.ok and rc.ok and (rb.previous, rc.previous) == ("a", "b")
    swap_log = [entry for entry in log if entry[0] != "server"]
    end_b = swap_log.index(("b", "end"))
    assert all(who == "b" for who, _ in swap_log[:end_b]) and swap_log[0] == ("b", "stopping")
    assert all(who == "c" for who, _ in swap_log[end_b + 1 :])
    # The server went down and up exactly twice, in order.
    states = [s for who, s in log if who == "server"]
    assert states.count("starting") == 2 and states.count("stopped") == 2
    assert states.index("stopped") < states.index("starting") < states.index("ready")
    _serving(mgr, "c")


async def test_latest_queued_request_wins(tmp_path: Path, mgr: ServerManager) -> None:
    swapper = Swapper(mgr)
    await swapper.swap(_profile(tmp_path, "a"))
    first = asyncio.create_task(swapper.swap(_profile(tmp_path, "b")))
    await asyncio.sleep(0)  # b takes the lock
    assert swapper.busy
    rc, rd = await asyncio.gather(
        swapper.swap(_profile(tmp_path, "c")), swapper.swap(_profile(tmp_path, "d"))
    )
    rb = await first
    assert rb.ok and rb.profile == "b"
    assert rc.superseded and not rc.ok and rc.error is not None and "superseded" in rc.error
    assert rd.ok and rd.previous == "b"
    _serving(mgr, "d")


# -- VRAM ----------------------------------------------------------------------------------------
class FakeNVML:
    """One GPU whose driver lags: a dead process stays listed, then its memory stays used."""

    def __init__(self, base: int, *, list_s: float, hold_s: float) -> None:
        self.base = base
        self.held: dict[int, int] = {}
        self.list_s, self.hold_s = list_s, hold_s
        self.died: dict[int, float] = {}

    def _tick(self) -> None:
        now = time.monotonic()
        for pid in list(self.held):
            if pid not in self.died and _gone(pid):
                self.died[pid] = now
            if pid in self.died and now - self.died[pid] >= self.hold_s:
                del self.held[pid]

    def nvmlInit(self) -> None:
        pass

    def nvmlShutdown(self) -> None:
        pass

    def nvmlSystemGetDriverVersion(self) -> str:
        return "550.54"

    def nvmlDeviceGetCount(self) -> int:
        return 1

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetMemoryInfo(self, h: int) -> Any:
        self._tick()
        used = self.base + sum(self.held.values())
        return SimpleNamespace(total=80 * GiB, used=used, free=80 * GiB - used)

    def nvmlDeviceGetComputeRunningProcesses(self, h: int) -> list[Any]:
        self._tick()
        now = time.monotonic()
        return [
            SimpleNamespace(pid=p, usedGpuMemory=m)
            for p, m in self.held.items()
            if p not in self.died or now - self.died[p] < self.list_s
        ]

    def __getattr__(self, name: str) -> Any:  # every other query: "not supported"
        if name.startswith("nvml"):

            def unsupported(*args: object, **kw: object) -> Any:
                raise NotImplementedError(name)

            return unsupported
        raise AttributeError(name)


async def test_vram_wait_until_pid_gone_and_memory_back(tmp_path: Path, mgr: ServerManager) -> None:
    nvml = FakeNVML(1 * GiB, list_s=0.2, hold_s=0.4)
    swapper = Swapper(mgr, gpu=GpuProbe(nvml=nvml), vram_timeout_s=5.0)
    await swapper.swap(_profile(tmp_path, "a"))
    assert swapper.baseline is not None and swapper.baseline.used_bytes == ((0, 1 * GiB),)
    assert mgr.pid is not None
    nvml.held[mgr.pid] = 6 * GiB
    result = await swapper.swap(_profile(tmp_path, "b"))
    assert result.ok and result.vram is not None and result.vram.status == "released"
    assert 0.4 <= result.vram.waited_s < 2.0
    assert result.vram.baseline_bytes == result.vram.used_bytes == 1 * GiB
    assert dict(result.phases)[SwapPhase.RELEASING_VRAM] >= 0.4


async def test_vram_timeout_is_reported_and_the_swap_goes_on(
    tmp_path: Path, mgr: ServerManager
) -> None:
    nvml = FakeNVML(1 * GiB, list_s=60, hold_s=60)
    swapper = Swapper(mgr, gpu=GpuProbe(nvml=nvml), vram_timeout_s=0.3)
    await swapper.swap(_profile(tmp_path, "a"))
    assert mgr.pid is not None
    nvml.held[mgr.pid] = 6 * GiB
    events: list[SwapEvent] = []
    result = await swapper.swap(_profile(tmp_path, "b"), events.append)
    assert result.ok and result.vram is not None and result.vram.status == "timeout"
    assert result.vram.reason is not None and "still holds 6.0 GiB" in result.vram.reason
    details = [e.detail for e in events if isinstance(e, SwapProgress) and e.detail]
    assert any(d.startswith("timeout: VRAM not released after 0.3 s") for d in details)
    _serving(mgr, "b")


async def test_no_gpu_skips_the_vram_wait(tmp_path: Path, mgr: ServerManager) -> None:
    class NoDriver:
        class NVMLError_DriverNotLoaded(Exception):
            pass

        def nvmlInit(self) -> None:
            raise self.NVMLError_DriverNotLoaded()

    swapper = Swapper(mgr, gpu=GpuProbe(nvml=NoDriver()))
    await swapper.swap(_profile(tmp_path, "a"))
    assert swapper.baseline is None
    result = await swapper.swap(_profile(tmp_path, "b"))
    assert result.ok and result.vram is not None
    assert (result.vram.status, result.vram.reason) == ("skipped", "no NVIDIA GPU")


# -- the server's own load time ------------------------------------------------------------------
def test_server_load_time_from_the_log() -> None:
    stamped = (
        "0.00.012.327 I srv load_model: loading",
        "1.02.200.752 I srv  llama_server: model loaded",
    )
    assert server_load_time(stamped) == pytest.approx(62.200752)
    assert server_load_time(("main: model loaded",), 0.25) == 0.25
    assert server_load_time(("main: server is listening",)) is None


async def test_load_time_waits_for_a_loaded_line_that_comes_after_ready(
    tmp_path: Path, mgr: ServerManager
) -> None:
    """/health says 200 before the log reader has the ``model loaded`` line (a busy machine:
    CI once had ``server_load_s`` None): the swap waits for the line, a bounded while."""
    late = _profile(tmp_path, "late", FAKE_LOADED_LINE_DELAY_S="0.25")
    result = await Swapper(mgr).swap(late)
    assert result.ok and result.server_load_s is not None
    assert 0 < result.server_load_s <= result.total_s
    never = _profile(tmp_path, "never", FAKE_LOADED_LINE_DELAY_S="30")
    started = time.monotonic()
    result = await Swapper(mgr).swap(never)
    assert result.ok and result.server_load_s is None
    assert time.monotonic() - started < 10  # the wait is bounded (0.5 s), not the line's 30 s
