"""SVG snapshots of every screen (main/chat, dashboard, profiles, compare, bench, conversations,
connect, help) at 80x24, 120x40 and 200x60 in the dark theme, and at 120x40 in the light one.
Everything shown is fixed by the test (no live metrics, no temp paths, an empty bench store).
Regenerate with ``pytest tests/ui/test_snapshots_views.py --snapshot-update``.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from coder_tui.core.config.loader import Config
from coder_tui.core.gguf.profile_info import ProfileInfo
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui.app import CoderApp
from coder_tui.ui.messages import MetricsUpdated
from coder_tui.ui.screens.bench import BenchScreen
from coder_tui.ui.screens.compare import CompareScreen
from coder_tui.ui.screens.profiles import ProfilesScreen

SIZES = [(80, 24), (120, 40), (200, 60)]
PARAMS = [(s, "coder-dark") for s in SIZES] + [((120, 40), "coder-light")]
IDS = [f"{w}x{h}-{t}" for (w, h), t in PARAMS]

Step = Callable[[Pilot[Any]], Awaitable[None]]


async def _settle(pilot: Pilot[Any]) -> None:
    previous = ""
    for _ in range(40):
        await pilot.pause(0.05)
        frame = pilot.app.export_screenshot()
        if frame == previous:
            return
        previous = frame
    raise AssertionError("the screen kept changing for 2 s")


def _app(config: Config, store: HistoryStore) -> CoderApp:
    return CoderApp(config, autostart=False, store=store, sample_metrics=False)


def _themed(theme: str, then: Step | None = None) -> Step:
    async def run_before(pilot: Pilot[Any]) -> None:
        pilot.app.theme = theme
        await pilot.pause()
        if then is not None:
            await then(pilot)
        await pilot.pause()
        for field in pilot.app.screen.query("Input, TextArea"):
            field.cursor_blink = False  # type: ignore[attr-defined]  # a blink is not a change
        await _settle(pilot)

    return run_before


def _two_profiles(config: Config) -> Config:
    """``offline_config`` with a second profile (compare and bench pick two)."""
    current = config.profile()
    f16 = replace(current, name="f16", model=current.model.with_name("Demo-F16.gguf"))
    return replace(config, profiles={"q4_k_m": current, "f16": f16})


@pytest.fixture
def empty_bench_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A data folder of the test's own: the bench screen shows the newest stored run."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


@pytest.mark.parametrize(("size", "theme"), PARAMS, ids=IDS)
def test_main_screen(
    snap_compare: Any,
    offline_config: Config,
    store: HistoryStore,
    seeded: int,
    size: tuple[int, int],
    theme: str,
) -> None:
    assert snap_compare(_app(offline_config, store), terminal_size=size, run_before=_themed(theme))


@pytest.mark.parametrize(("size", "theme"), PARAMS, ids=IDS)
def test_dashboard(
    snap_compare: Any,
    offline_config: Config,
    store: HistoryStore,
    size: tuple[int, int],
    theme: str,
) -> None:
    from test_dashboard import _moe_snap  # the dashboard tests' fixed snapshot

    async def open_dashboard(pilot: Pilot[Any]) -> None:
        await pilot.press("f4")
        await pilot.pause()
        pilot.app.post_message(MetricsUpdated(_moe_snap()))
        await pilot.pause()

    assert snap_compare(
        _app(offline_config, store), terminal_size=size, run_before=_themed(theme, open_dashboard)
    )


@pytest.mark.parametrize(("size", "theme"), PARAMS, ids=IDS)
def test_profiles_picker(
    snap_compare: Any,
    offline_config: Config,
    store: HistoryStore,
    size: tuple[int, int],
    theme: str,
) -> None:
    current = offline_config.profile()
    iq2 = replace(
        current,
        name="iq2_xxs",
        model=Path("Qwen3-Coder-Next-UD-IQ2_XXS.gguf"),
        n_gpu_layers=42,
        n_cpu_moe=10,
    )
    profiles = {"iq2_xxs": iq2, "q4_k_m": current}
    infos = {
        "iq2_xxs": ProfileInfo(
            "iq2_xxs", "Qwen3-Coder-Next-UD-IQ2_XXS.gguf", 26 * 2**30, "IQ2_XXS", 48, 42, 10
        ),
        "q4_k_m": ProfileInfo("q4_k_m", "Demo-Q4_K_M.gguf", 2642368, "Q4_K", 2, None, None),
    }

    async def open_picker(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, CoderApp)
        app.push_screen(
            ProfilesScreen(
                profiles, infos, offline_config.profile(), {"q4_k_m": 21.78}, {"q4_k_m": 0.27}
            )
        )
        await pilot.pause()

    assert snap_compare(
        _app(offline_config, store), terminal_size=size, run_before=_themed(theme, open_picker)
    )


@pytest.mark.parametrize(("size", "theme"), PARAMS, ids=IDS)
def test_compare_screen(
    snap_compare: Any,
    offline_config: Config,
    store: HistoryStore,
    size: tuple[int, int],
    theme: str,
) -> None:
    config = _two_profiles(offline_config)

    async def open_compare(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, CoderApp) and app.switch is not None and app.manager is not None
        app.push_screen(
            CompareScreen(
                config.profiles, app.switch.swapper, app.manager, prompt="write a function"
            )
        )
        await pilot.pause()

    assert snap_compare(
        _app(config, store), terminal_size=size, run_before=_themed(theme, open_compare)
    )


@pytest.mark.parametrize(("size", "theme"), PARAMS, ids=IDS)
def test_bench_screen(
    snap_compare: Any,
    offline_config: Config,
    store: HistoryStore,
    empty_bench_store: None,
    size: tuple[int, int],
    theme: str,
) -> None:
    config = _two_profiles(offline_config)

    async def open_bench(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, CoderApp) and app.manager is not None
        app.push_screen(BenchScreen(config, app.manager))
        await pilot.pause()

    assert snap_compare(
        _app(config, store), terminal_size=size, run_before=_themed(theme, open_bench)
    )


@pytest.fixture
def fixed_times(store: HistoryStore, seeded: int, tmp_path: Path) -> Iterator[None]:
    """The seeded conversation dated 2023-11-14 22:13 UTC (the list shows its date)."""
    with sqlite3.connect(tmp_path / "history.sqlite3") as db:
        db.execute("UPDATE conversations SET created_at = 1700000000, updated_at = 1700000000")
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.mark.parametrize(("size", "theme"), PARAMS, ids=IDS)
@pytest.mark.parametrize("key", ["ctrl+l", "f8", "f1"], ids=["conversations", "connect", "help"])
def test_screen_opened_by_key(
    snap_compare: Any,
    offline_config: Config,
    store: HistoryStore,
    fixed_times: None,
    size: tuple[int, int],
    theme: str,
    key: str,
) -> None:
    async def press(pilot: Pilot[Any]) -> None:
        await pilot.press(key)
        await pilot.pause()

    assert snap_compare(
        _app(offline_config, store), terminal_size=size, run_before=_themed(theme, press)
    )
