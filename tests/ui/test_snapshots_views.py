"""SVG snapshots of the key views (main/chat, dashboard, profiles, bench) in a dark and a light
theme at 80x24 and 160x50. Everything shown is fixed by the test (no live metrics, no temp paths).
Regenerate with ``pytest tests/ui/test_snapshots_views.py --snapshot-update``.
"""

from __future__ import annotations

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
from coder_tui.ui.screens.profiles import ProfilesScreen

SIZES = [(80, 24), (160, 50)]
THEMES = ["coder-dark", "coder-light"]
PARAMS = [(s, t) for s in SIZES for t in THEMES]
IDS = [f"{w}x{h}-{t}" for (w, h), t in PARAMS]


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


def _themed(theme: str, then: Any = None) -> Any:
    async def run_before(pilot: Pilot[Any]) -> None:
        pilot.app.theme = theme
        await pilot.pause()
        if then is not None:
            await then(pilot)
        await _settle(pilot)

    return run_before


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
    from test_dashboard import ONE_GPU, _snap  # the dashboard tests' fixed snapshot

    async def open_dashboard(pilot: Pilot[Any]) -> None:
        await pilot.press("f4")
        await pilot.pause()
        pilot.app.post_message(MetricsUpdated(_snap(ONE_GPU)))
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
    from dataclasses import replace

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
def test_bench_screen(
    snap_compare: Any,
    offline_config: Config,
    store: HistoryStore,
    size: tuple[int, int],
    theme: str,
    tmp_path: Path,
) -> None:
    async def open_bench(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, CoderApp) and app.manager is not None
        app.push_screen(BenchScreen(offline_config, app.manager))
        await pilot.pause()

    assert snap_compare(
        _app(offline_config, store), terminal_size=size, run_before=_themed(theme, open_bench)
    )
