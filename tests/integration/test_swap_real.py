"""Hot-swap with the real llama-server between two quants of the demo model, and failed swaps."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from coder_tui.core.config.loader import Config
from coder_tui.core.metrics.gpu import GpuProbe
from coder_tui.core.metrics.types import NO_GPU
from coder_tui.core.server.events import ServerState
from coder_tui.core.server.process import ServerManager
from coder_tui.core.server.swap import Swapper, SwapPhase

pytestmark = pytest.mark.integration


def _gone(pid: int | None) -> bool:
    assert pid is not None
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
async def mgr(demo_config: Config, tmp_path: Path) -> AsyncIterator[ServerManager]:
    manager = ServerManager(demo_config.server, log_dir=tmp_path / "logs")
    yield manager
    await manager.stop()


@pytest.fixture
def gpu() -> Iterator[GpuProbe]:
    probe = GpuProbe()
    yield probe
    probe.close()


async def test_a_to_b_to_a(demo_config: Config, mgr: ServerManager, gpu: GpuProbe) -> None:
    swapper = Swapper(mgr, gpu=gpu)
    a, b = demo_config.profile("q8_0"), demo_config.profile("q4_k_m")
    pids: list[int] = []
    results = []
    for profile in (a, b, a):
        result = await swapper.swap(profile)
        assert result.ok, result.error
        assert result.profile == profile.name and mgr.profile_name == profile.name
        assert mgr.state is ServerState.READY and mgr.pid is not None
        assert result.load_time_s is not None and result.load_time_s > 0
        assert result.server_load_s is not None and 0 < result.server_load_s <= result.total_s
        assert result.overhead_s is not None and result.overhead_s >= 0
        pids.append(mgr.pid)
        results.append(result)
    assert results[0].vram is None  # nothing was running
    for result in results[1:]:
        assert [p for p, _ in result.phases][:2] == [SwapPhase.STOPPING, SwapPhase.RELEASING_VRAM]
        assert result.vram is not None
        if not gpu.sample().available:
            assert (result.vram.status, result.vram.reason) == ("skipped", NO_GPU)
        else:
            assert result.vram.status == "released"
    assert (results[1].previous, results[2].previous) == ("q8_0", "q4_k_m")
    assert _gone(pids[0]) and _gone(pids[1]) and not _gone(pids[2])
    await mgr.stop()
    assert _gone(pids[2])


async def test_missing_model_keeps_serving(
    demo_config: Config, mgr: ServerManager, tmp_path: Path
) -> None:
    swapper = Swapper(mgr)
    await swapper.swap(demo_config.profile("q8_0"))
    pid = mgr.pid
    bad = replace(demo_config.profile("q4_k_m"), model=tmp_path / "missing.gguf")
    result = await swapper.swap(bad)
    assert not result.ok and result.profile == "q8_0"
    assert result.error is not None and "model file not found" in result.error
    assert "missing.gguf" in result.error
    assert mgr.pid == pid and mgr.state is ServerState.READY


async def test_truncated_gguf_rolls_back(
    demo_config: Config, mgr: ServerManager, tmp_path: Path
) -> None:
    swapper = Swapper(mgr)
    a = demo_config.profile("q8_0")
    await swapper.swap(a)
    pid_a = mgr.pid
    truncated = tmp_path / "truncated.gguf"
    source = demo_config.profile("q4_k_m").model
    with source.open("rb") as src, truncated.open("wb") as dst:
        shutil.copyfileobj(src, dst)
        dst.truncate(source.stat().st_size // 2)
    result = await swapper.swap(replace(demo_config.profile("q4_k_m"), model=truncated))
    assert not result.ok and result.rolled_back, result
    assert result.error is not None
    assert "could not start q4_k_m" in result.error and "rolled back to q8_0" in result.error
    assert "failed to load the model" in result.error or "not a valid GGUF" in result.error
    assert result.log_tail and any(
        "truncated" in line or "load" in line for line in result.log_tail
    )
    assert _gone(pid_a)
    assert mgr.profile_name == "q8_0" and mgr.state is ServerState.READY
    assert mgr.pid is not None and not _gone(mgr.pid)
