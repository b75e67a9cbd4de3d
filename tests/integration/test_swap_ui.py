"""Swap and compare in the TUI against the real llama-server and two real quants of the demo model."""

from __future__ import annotations

from pathlib import Path

import psutil

from coder_tui.core.config.loader import Config
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui.app import CoderApp
from coder_tui.ui.screens.compare import CompareScreen
from coder_tui.ui.screens.confirm import ConfirmScreen
from coder_tui.ui.screens.main import MainScreen
from coder_tui.ui.screens.profiles import ProfilesScreen
from coder_tui.ui.widgets.message import MessageView
from coder_tui.ui.widgets.prompt import PromptInput

from .util import until


async def test_picker_diff_confirm_swap_keeps_conversation(
    demo_config: Config, tmp_path: Path
) -> None:
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        app = CoderApp(demo_config, store=store, sample_metrics=False)
        async with app.run_test(size=(140, 45)) as pilot:
            await until(lambda: app.main is not None and app.main.server_ready)
            main = app.screen
            assert isinstance(main, MainScreen) and app.manager is not None
            old_pid = app.manager.pid
            prompt = main.query_one(PromptInput)
            prompt.post_message(PromptInput.Submitted(prompt, "hello"))
            await until(lambda: len(main.query(MessageView)) == 2 and not main.generating)
            await pilot.press("f6")
            await until(lambda: isinstance(app.screen, ProfilesScreen))
            # The table lists every profile with its quant read from the GGUF.
            # (the screen is current before its on_mount has filled the table)
            table = app.screen.query_one("DataTable")
            await until(lambda: table.row_count > 0)  # type: ignore[attr-defined]
            assert table.row_count == 4  # type: ignore[attr-defined]
            await pilot.press("down")  # from f16 (first row) to q8_0
            await pilot.pause()
            diff = str(app.screen.query_one("#diff").render())
            assert "model: demo-small-Q4_K_M.gguf → demo-small-Q8_0.gguf" in diff
            await pilot.press("enter")
            await until(lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await until(lambda: app.manager is not None and app.manager.profile_name == "q8_0")
            await until(lambda: main.server_ready)
            assert old_pid is not None and not psutil.pid_exists(old_pid)
            # Same conversation; the next reply is labelled with the new profile.
            prompt.post_message(PromptInput.Submitted(prompt, "again"))
            await until(lambda: len(main.query(MessageView)) == 4 and not main.generating)
            msgs = store.messages(main.conversation.id)  # type: ignore[union-attr]
            assert [m.profile for m in msgs if m.role == "assistant"] == ["q4_k_m", "q8_0"]
            assert app.switch is not None and app.switch.load_times.keys() >= {"q4_k_m", "q8_0"}
            await pilot.press("ctrl+q")


async def test_compare_two_profiles_repeat_and_export(demo_config: Config, tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        app = CoderApp(demo_config, store=store, sample_metrics=False)
        async with app.run_test(size=(160, 50)) as pilot:
            await until(lambda: app.main is not None and app.main.server_ready)
            await pilot.press("f7")
            await until(lambda: isinstance(app.screen, CompareScreen))
            screen = app.screen
            assert isinstance(screen, CompareScreen)
            screen.query_one("#b").value = "iq2_xxs"  # type: ignore[attr-defined]
            screen.query_one("#repeats").value = "3"  # type: ignore[attr-defined]
            screen.query_one("#prompt-in").value = "write a function"  # type: ignore[attr-defined]
            await pilot.click("#run")
            await until(lambda: screen.result is not None, 120)
            result = screen.result
            assert result is not None
            assert len(result.runs_a) == 3 and len(result.runs_b) == 3
            assert {r.profile for r in result.runs_b} == {"iq2_xxs"}
            sa, sb, delta = result.stats("generation_tokens_per_s")
            assert sa.n == 3 and sb.n == 3 and delta is not None
            table = screen.query_one("DataTable")
            assert table.row_count == 5  # type: ignore[attr-defined]
            await until(lambda: screen.saved_run_id is not None)
            from coder_tui.core.bench.store import BenchStore
            from coder_tui.core.paths import app_paths

            with BenchStore(app_paths().history_db) as bench_store:
                saved = bench_store.load(screen.saved_run_id)  # type: ignore[arg-type]
            assert {s.profile for s in saved.samples} == {"q4_k_m", "iq2_xxs"}
            assert len(saved.samples) == 6
            await pilot.press("ctrl+t")
            assert screen.has_class("-diff")
            await pilot.press("ctrl+s")
            await pilot.pause()
            exports = list(Path(app_data_dir()).glob("exports/compare-q4_k_m-vs-iq2_xxs.md"))
            assert exports and "| generation tok/s |" in exports[0].read_text()
            # The compare returns to the profile that served before it.
            await until(lambda: app.manager is not None and app.manager.profile_name == "q4_k_m")
            await pilot.press("escape")
            await pilot.press("ctrl+q")


def app_data_dir() -> Path:
    from coder_tui.core.paths import app_paths

    return app_paths().data_dir
