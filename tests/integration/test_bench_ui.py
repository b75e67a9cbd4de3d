"""The bench screen (F9) with the real server: runs two profiles, shows the seed table, restores."""

from __future__ import annotations

from pathlib import Path

from coder_tui.core.config.loader import Config
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui.app import CoderApp
from coder_tui.ui.screens.bench import BenchScreen

from .util import until


async def test_bench_screen_runs_and_restores(demo_config: Config, tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        app = CoderApp(demo_config, store=store, sample_metrics=False)
        async with app.run_test(size=(160, 50)) as pilot:
            await until(lambda: app.main is not None and app.main.server_ready)
            await pilot.press("f9")
            await until(lambda: isinstance(app.screen, BenchScreen))
            screen = app.screen
            assert isinstance(screen, BenchScreen)
            screen.query_one("#runs").value = "1"  # type: ignore[attr-defined]
            screen.query_one("#max-tokens").value = "8"  # type: ignore[attr-defined]
            screen.query_one("#categories").value = "coding"  # type: ignore[attr-defined]
            await pilot.click("#run")
            await until(lambda: screen.result is not None)
            result = screen.result
            assert result is not None and not result.interrupted
            assert {s.profile for s in result.samples} == {"q4_k_m", "f16"}
            text = screen.query_one("#report-md").source  # type: ignore[attr-defined]
            assert "Overall Speed" in text and "Model Size" in text and "Load Time" in text
            assert result.run_id is not None
            await until(
                lambda: (
                    app.manager is not None
                    and app.manager.profile_name == "q4_k_m"
                    and app.main is not None
                    and app.main.server_ready
                )
            )
            await pilot.press("escape")
            await pilot.press("ctrl+q")
