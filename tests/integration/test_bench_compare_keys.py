"""Compare from the keyboard at 80x24 against the real server (issue 25): F7, type a prompt, Tab
to Run, Enter; both replies are exactly the shared fixed length, and the deltas carry the bench's
significance mark; Ctrl+T (diff) and Ctrl+S (export) work from the prompt. And from the command
palette: "Compare A vs B" opens it with both chosen, and Enter in the prompt runs them."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from textual.widgets import Button, Input, Static

from coder_tui.core.config.loader import Config, Profile
from coder_tui.core.paths import app_paths
from coder_tui.core.server.events import Ready
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
            # Diff and export with the focus back in the prompt (it took Ctrl+D and Ctrl+E).
            for _ in range(6):
                await pilot.press("shift+tab")
                if screen.focused is not None and screen.focused.id == "prompt-in":
                    break
            assert isinstance(screen.focused, Input) and screen.focused.id == "prompt-in"
            await pilot.press("ctrl+t")
            await pilot.pause()
            assert screen.has_class("-diff") and screen.query_one("#diff").region.height > 0
            diff = str(screen.query_one("#diff-text", Static).render())
            assert diff.startswith("---") or diff == "(the replies are identical)", diff
            export = app_paths().data_dir / "exports" / f"compare-{result.a}-vs-{result.b}.md"
            export.unlink(missing_ok=True)
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert "| generation tok/s |" in export.read_text()
            assert screen.query_one("#prompt-in", Input).value == "write a function"  # untouched
            await pilot.press("escape")
            await pilot.press("ctrl+q")


async def test_the_palette_compares_a_chosen_pair_from_the_keyboard_at_80x24(
    demo_config: Config, tmp_path: Path
) -> None:
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        app = CoderApp(demo_config, store=store, sample_metrics=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(lambda: app.main is not None and app.main.server_ready)
            await pilot.press("ctrl+p")
            await pilot.press(*"compare iq2_xxs vs q8_0")
            await pilot.pause(0.3)  # the palette searches in a worker
            await pilot.press("enter")
            await until(lambda: isinstance(app.screen, CompareScreen))
            screen = app.screen
            assert isinstance(screen, CompareScreen)
            screen.max_tokens = 16
            await pilot.press(*"write a function", "enter")
            await until(lambda: screen.result is not None, 120)
            result = screen.result
            assert result is not None and (result.a, result.b) == ("iq2_xxs", "q8_0")
            assert {r.profile for r in result.runs_a} == {"iq2_xxs"}
            assert {r.profile for r in result.runs_b} == {"q8_0"}
            assert [r.tokens for r in (*result.runs_a, *result.runs_b)] == [16, 16]
            await until(lambda: app.manager is not None and app.manager.profile_name == "q4_k_m")
            await pilot.press("escape")
            await pilot.press("ctrl+q")


async def test_esc_stops_a_compare_between_steps_and_serves_what_served_before(
    demo_config: Config, tmp_path: Path
) -> None:
    """Esc during B's swap popped the screen and cancelled the swap midway: no server was left
    (``q4_k_m ● stopped``), and nothing said why."""
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        app = CoderApp(demo_config, store=store, sample_metrics=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(lambda: app.main is not None and app.main.server_ready)
            await pilot.press("f7")
            await until(lambda: isinstance(app.screen, CompareScreen))
            screen = app.screen
            assert isinstance(screen, CompareScreen) and app.manager is not None
            screen.max_tokens = 16
            status = screen.query_one("#status", Static)
            # A compare of the demo model takes well under a second: B's start is held (q4_k_m
            # already stopped) until Esc has been pressed, so Esc lands mid-swap every time.
            manager, real_start = app.manager, app.manager.start
            reached, gate = asyncio.Event(), asyncio.Event()

            async def held_start(profile: Profile) -> Ready:
                if profile.name == "f16":
                    reached.set()
                    await gate.wait()
                return await real_start(profile)

            manager.start = held_start  # type: ignore[method-assign]
            await pilot.press("ctrl+a", "ctrl+k", *"write a function", "enter")
            await asyncio.wait_for(reached.wait(), 60)
            assert "switching to f16" in str(status.render()) and not manager.running
            await pilot.press("escape")
            gate.set()
            assert app.screen is screen and screen.stopping  # the first Esc stops, it stays
            await pilot.press("enter")  # no second compare over the one stopping
            await until(lambda: not screen.running, 120)
            text = str(status.render())
            assert text.startswith("stopped (q4_k_m vs f16 not finished)"), text
            assert text.endswith("serving q4_k_m"), text
            assert screen.result is None and screen.saved_run_id is None
            assert app.manager.running and app.manager.profile_name == "q4_k_m"
            await until(lambda: app.main is not None and app.main.server_ready)
            await pilot.press("escape")  # idle now: back to the chat
            await until(lambda: not isinstance(app.screen, CompareScreen))
            await pilot.press("ctrl+q")


async def test_a_compare_that_fails_on_b_serves_what_served_before(
    demo_config: Config, tmp_path: Path
) -> None:
    """B cannot start (its model file is not a model): the swap rolls back to A, and the compare
    then serves q4_k_m again, as a finished one does, saying so (it stayed on A)."""
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a model")
    a = demo_config.profiles["q8_0"]
    config = replace(
        demo_config,
        profiles={**demo_config.profiles, "broken": replace(a, name="broken", model=broken)},
    )
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        app = CoderApp(config, store=store, sample_metrics=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(lambda: app.main is not None and app.main.server_ready)
            await pilot.press("ctrl+p", *"compare q8_0 vs broken")
            await pilot.pause(0.3)  # the palette searches in a worker
            await pilot.press("enter")
            await until(lambda: isinstance(app.screen, CompareScreen))
            screen = app.screen
            assert isinstance(screen, CompareScreen) and app.manager is not None
            screen.max_tokens = 16
            await pilot.press(*"write a function", "enter")
            status = screen.query_one("#status", Static)
            await until(lambda: not screen.running and "not finished" in str(status.render()), 120)
            text = str(status.render())
            assert text.startswith("cannot serve broken"), text
            assert text.endswith("(q8_0 vs broken not finished); serving q4_k_m"), text
            assert app.manager.running and app.manager.profile_name == "q4_k_m"
            await pilot.press("escape")
            await pilot.press("ctrl+q")
