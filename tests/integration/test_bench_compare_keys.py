"""Compare from the keyboard at 80x24 against the real server (issue 25): F7, type a prompt, Tab
to Run, Enter; both replies are exactly the shared fixed length, and the deltas carry the bench's
significance mark."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Button

from coder_tui.core.config.loader import Config
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui.app import CoderApp
from coder_tui.ui.screens.compare import CompareScreen

from .util import until


async def test_compare_runs_from_the_keyboard_at_80x24(demo_config: Config, tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        app = CoderApp(demo_config, store=store, sample_metrics=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(lambda: app.main is not None and app.main.server_ready)
            await pilot.press("f7")
            await until(lambda: isinstance(app.screen, CompareScreen))
            screen = app.screen
            assert isinstance(screen, CompareScreen)
            screen.max_tokens = 16  # a short, fixed reply keeps the test quick
            await pilot.press("ctrl+a", "ctrl+k")  # the prompt field starts with the last prompt
            await pilot.press(*"write a function")
            run = screen.query_one("#run", Button)
            for _ in range(6):
                if screen.focused is not None and screen.focused.id == "run":
                    break
                await pilot.press("tab")
            assert screen.focused is run
            await pilot.press("enter")
            await until(lambda: screen.result is not None, 120)
            result = screen.result
            assert result is not None and result.prompt == "write a function"
            assert result.fixed_length
            assert [r.tokens for r in (*result.runs_a, *result.runs_b)] == [16, 16]
            text = result.delta_text("generation_tokens_per_s")
            assert text.endswith("(n.s.)")  # one run a side: never significant
            await until(lambda: app.manager is not None and app.manager.profile_name == "q4_k_m")
            await pilot.press("escape")
            await pilot.press("ctrl+q")
