"""Issue 25's screen defects, each checked on what the terminal shows (every layer composed:
overlays, toasts, borders), so that each test fails on the code before the fix (b93293b) for the
reason the issue gives, not for a missing name. ``tests/ui/test_help_and_footer.py``,
``test_layouts.py``, ``test_true_states.py`` and ``test_dashboard.py`` hold the rest."""

from __future__ import annotations

import argparse
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from tests.fakes.metrics_snapshots import moe_snapshot
from textual.widgets import Button, DataTable, Footer, Input, SelectionList
from textual.widgets._toast import Toast

from coder_tui.cli import bench as bench_cli
from coder_tui.core.bench.compare import CompareResult, CompareRun
from coder_tui.core.bench.compare_store import as_bench_result
from coder_tui.core.bench.store import BenchStore
from coder_tui.core.config.loader import Config
from coder_tui.core.gguf.profile_info import ProfileInfo
from coder_tui.core.paths import app_paths
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui import metrics_view
from coder_tui.ui.app import CoderApp
from coder_tui.ui.messages import MetricsUpdated
from coder_tui.ui.screens.bench import BenchScreen
from coder_tui.ui.screens.profiles import ProfilesScreen
from coder_tui.ui.widgets.tile import MetricTile


def _app(config: Config, store: HistoryStore) -> CoderApp:
    return CoderApp(config, autostart=False, store=store, sample_metrics=False)


def _two(config: Config) -> Config:
    current = config.profile()
    return replace(config, profiles={"q4_k_m": current, "f16": replace(current, name="f16")})


def _rows(app: Any) -> list[str]:
    """The terminal's rows as the user sees them: the screen with every layer composed."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def _shown(app: Any, widget: Any, sep: str = "") -> str:
    """What the terminal shows in ``widget``'s region (anything drawn over it included)."""
    r = widget.region
    return sep.join(row[r.x : r.right] for row in _rows(app)[r.y : r.bottom])


def _words(text: str) -> str:
    return " ".join(text.split())


# -- Help ------------------------------------------------------------------------------------------


async def test_f1_at_80x24_shows_the_app_keys_and_no_editor_keys(
    offline_config: Config, store: HistoryStore
) -> None:
    """F1 opened Textual's key panel: editor keys (``Cursor up``), the app's keys at the bottom,
    none of them on screen at 80x24."""
    app = _app(offline_config, store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f1")
        await pilot.pause()
        shown = "\n".join(_rows(app)[:-1])  # the footer's row aside
        for key, action in (
            ("F2", "start the server"),
            ("F3", "stop the server"),
            ("F5", "stop, then start again"),
            ("F6", "profiles"),
            ("F7", "compare two profiles"),
            ("F9", "benchmark profiles"),
        ):
            assert re.search(rf"\b{key}\s+{re.escape(action)}", shown), (key, shown)
        assert "Cursor" not in shown


# -- 80x24 -----------------------------------------------------------------------------------------


async def test_footer_at_80_columns_shows_no_cut_key(
    offline_config: Config, store: HistoryStore
) -> None:
    """The footer ran past 80 columns: ``f1 K▏^p paletteb``, keys cut and scrolled out of sight."""
    app = _app(offline_config, store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        footer = app.screen.query_one(Footer)
        assert footer.max_scroll_x == 0
        row = _rows(app)[-1]
        for key in footer.children:
            words = f"{getattr(key, 'key_display', '')} {getattr(key, 'description', '')}"
            assert _words(words) in _words(row), (words, row)


async def test_chat_summary_at_80_columns_shows_whole_values(
    offline_config: Config, store: HistoryStore
) -> None:
    """The chat's one-line summary was cut mid-value at 80 columns (``KV 26``)."""
    app = _app(offline_config, store)
    async with app.run_test(size=(80, 24)) as pilot:
        app.remove_class("-no-metrics")  # the strip shows; no sampler runs: the snapshot is posted
        await pilot.pause()
        snap = moe_snapshot()
        app.post_message(MetricsUpdated(snap))
        await pilot.pause()
        strip = app.screen.query_one("#strip")
        shown = _shown(app, strip).strip()
        values = metrics_view.strip(snap).split(" · ")
        assert shown, "no summary shown"
        for part in shown.split(" · "):
            assert part.strip() in values, (part, shown)


async def test_moe_tile_keeps_its_ram_traffic_at_80x24(
    offline_config: Config, store: HistoryStore
) -> None:
    """At 80x24 the MoE tile showed ``2 layer(s) of experts`` and lost
    ``in RAM · 1003.8 KiB/token``."""
    app = _app(offline_config, store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f4")
        app.post_message(MetricsUpdated(moe_snapshot()))
        await pilot.pause()
        tile = app.screen.query_one("#tile-moe", MetricTile)
        assert "in RAM · 1003.8 KiB/token" in _words(_shown(app, tile, " ").replace("│", " "))


async def test_tile_titles_are_whole_at_80x24(offline_config: Config, store: HistoryStore) -> None:
    """At 80x24 the GPU tile's title became ``GPU util · power · …``."""
    app = _app(offline_config, store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f4")
        app.post_message(MetricsUpdated(moe_snapshot()))
        await pilot.pause()
        tiles = list(app.screen.query(MetricTile))
        assert tiles
        for tile in tiles:
            title = str(tile.border_title)
            top = _rows(app)[tile.region.y][tile.region.x : tile.region.right]
            assert title in top and "…" not in top, (title, top)


async def test_profiles_at_80x24_show_the_load_column(
    offline_config: Config, store: HistoryStore
) -> None:
    """At 80x24 the profiles table's ``load`` column was off the right edge."""
    current = offline_config.profile()
    iq2 = replace(current, name="iq2_xxs", model=Path("Qwen3-Coder-Next-UD-IQ2_XXS.gguf"))
    infos = {
        "iq2_xxs": ProfileInfo(
            "iq2_xxs", "Qwen3-Coder-Next-UD-IQ2_XXS.gguf", 26 * 2**30, "IQ2_XXS", 48, 42, 10
        ),
        "q4_k_m": ProfileInfo("q4_k_m", "Demo-Q4_K_M.gguf", 2642368, "Q4_K", 2, None, None),
    }
    app = _app(offline_config, store)
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(
            ProfilesScreen(
                {"iq2_xxs": iq2, "q4_k_m": current}, infos, current, {}, {"q4_k_m": 0.27}
            )
        )
        await pilot.pause()
        table = app.screen.query_one(DataTable)
        header = _rows(app)[table.region.y][table.region.x : table.region.right]
        assert re.search(r"\bload\b", header) and re.search(r"\bgen\b", header), header
        assert "0.3 s" in _shown(app, table), _shown(app, table, "\n")


# -- Dashboard -------------------------------------------------------------------------------------


async def test_dashboard_footer_names_f4_once(offline_config: Config, store: HistoryStore) -> None:
    """On the dashboard the footer showed both ``F4 Back to chat`` and ``f4 Dashboard``."""
    app = _app(offline_config, store)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("f4")
        await pilot.pause()
        row = _rows(app)[-1]
        assert len(re.findall(r"\bf4\b", row, re.I)) == 1, row
        assert "Back to chat" in row and "Dashboard" not in row, row


async def test_graphs_have_a_time_axis_and_a_scale(
    offline_config: Config, store: HistoryStore
) -> None:
    """The sparklines had no scale and no time axis."""
    app = _app(offline_config, store)
    async with app.run_test(size=(200, 60)) as pilot:
        await pilot.press("f4")
        app.post_message(MetricsUpdated(moe_snapshot()))
        await pilot.pause()
        gen = app.screen.query_one("#tile-gen", MetricTile)
        shown = _shown(app, gen, "\n")
        assert re.search(r"-10m\b.*\bnow\b", shown), shown
        assert re.search(r"\b0[–-]\d+(\.\d+)? t/s", shown), shown  # the scale, in the unit


# -- Bench form ------------------------------------------------------------------------------------


@pytest.fixture
def own_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A data folder of this test's own: no other test's stored bench run shows in the form."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


def _cli_bench_defaults() -> tuple[int, int, bool]:
    parser = argparse.ArgumentParser()
    bench_cli.register(parser.add_subparsers(), argparse.ArgumentParser(add_help=False))
    args = parser.parse_args(["bench"])
    return args.runs, args.max_tokens, args.fixed_length


async def _bench(app: CoderApp, config: Config, pilot: Any) -> Any:
    assert app.manager is not None
    app.push_screen(BenchScreen(config, app.manager))
    await pilot.pause()
    return app.screen


@pytest.mark.usefixtures("own_data")
async def test_the_bench_form_starts_with_the_clis_settings(
    offline_config: Config, store: HistoryStore
) -> None:
    """The form's defaults were 2 runs of 64 tokens, fixed; the CLI's 5 of 256, not fixed."""
    config = _two(offline_config)
    app = _app(config, store)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _bench(app, config, pilot)
        runs = int(screen.query_one("#runs", Input).value)
        max_tokens = int(screen.query_one("#max-tokens", Input).value)
        fixed = bool(screen.query_one("#fixed").value)
        assert (runs, max_tokens, fixed) == _cli_bench_defaults()


@pytest.mark.usefixtures("own_data")
async def test_the_bench_checkboxes_show_their_state_without_colour(
    offline_config: Config, store: HistoryStore
) -> None:
    """Every box showed ``▐X▌``, ticked or not: the state was only in the colour."""
    config = _two(offline_config)
    app = _app(config, store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _bench(app, config, pilot)
        fixed = screen.query_one("#fixed")
        before = _shown(app, fixed)
        fixed.value = not fixed.value
        await pilot.pause()
        assert _shown(app, fixed) != before, before
        picks = screen.query_one("#profiles", SelectionList)
        assert len(picks.selected) == 1  # the serving profile picked, the other not
        rows = [r.strip() for r in _shown(app, picks, "\n").splitlines() if r.strip()][:2]
        assert len(rows) == 2 and rows[0][:3] != rows[1][:3], rows


@pytest.mark.usefixtures("own_data")
async def test_the_bench_categories_field_shows_its_whole_value(
    offline_config: Config, store: HistoryStore
) -> None:
    """At 80x24 the categories field showed ``coding,w``."""
    config = _two(offline_config)
    app = _app(config, store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _bench(app, config, pilot)
        field = screen.query_one("#categories", Input)
        assert field.value and field.value in _shown(app, field), _shown(app, field)


@pytest.mark.usefixtures("own_data")
async def test_the_bench_run_button_is_a_tab_or_two_away(
    offline_config: Config, store: HistoryStore
) -> None:
    """Tab needed 12 presses to reach Run."""
    config = _two(offline_config)
    app = _app(config, store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _bench(app, config, pilot)
        run = screen.query_one("#run", Button)
        presses = 0
        while screen.focused is not run and presses < 12:
            await pilot.press("tab")
            presses += 1
        assert screen.focused is run and presses <= 2, presses


@pytest.mark.usefixtures("own_data")
async def test_a_reopened_bench_shows_the_last_result(
    offline_config: Config, store: HistoryStore
) -> None:
    """The results were gone when F9 was opened again."""
    config = _two(offline_config)
    runs = tuple(CompareRun(n, "x", "done", 0.1, 500.0, 20.0, 8, None) for n in ("q4_k_m", "f16"))
    stored = as_bench_result(
        CompareResult("p", "q4_k_m", "f16", runs[:1], runs[1:]),
        {},
        max_tokens=8,
        llama_server_version=None,
        started_at=0.0,
    )
    stored = replace(stored, settings=replace(stored.settings, categories=("coding",)))
    db = app_paths().history_db
    db.parent.mkdir(parents=True, exist_ok=True)
    with BenchStore(db) as bench_store:
        run_id = bench_store.save(stored)
    app = _app(config, store)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _bench(app, config, pilot)
        for _ in range(40):
            await pilot.pause(0.05)
            if f"#{run_id}" in "\n".join(_rows(app)):
                break
        report = _shown(app, screen.query_one("#report"), "\n")
        assert f"Benchmark #{run_id}" in report, report


# -- Misleading states -----------------------------------------------------------------------------


async def test_the_newest_export_toast_shows_its_path_whole_at_80x24(
    offline_config: Config, store: HistoryStore
) -> None:
    """``…/exports/2-hello-second-chat.`` without ``.md``: at 80x24 a toast takes 6 rows and the
    rack grows down from the top, so the newest toast (the 4th export, or the 3rd after any
    other notice) runs off the bottom of the terminal: its path is cut, or not shown at all."""
    store.new_conversation("hello")
    conv = store.new_conversation("hello second chat")
    store.add_user_message(conv.id, "hello", "q4_k_m")
    app = _app(offline_config, store)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+l")
        await pilot.pause()
        for _ in range(4):
            await pilot.press("e")
            await pilot.pause()
        await pilot.pause(0.2)
        path = list(app._notifications)[-1].message.removeprefix("exported to ")
        assert path.endswith("2-hello-second-chat.md"), path
        toast = app.screen.query(Toast).last()
        shown = _shown(app, toast, "\n")
        text = "".join(line.replace("▌", "").strip() for line in shown.splitlines())
        assert path in text, (path, shown)
