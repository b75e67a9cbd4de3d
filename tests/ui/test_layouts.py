"""Screens at 80x24 (issue 25): compare's Run on screen and reached from the keyboard, A over B;
the profiles table leaves out columns by priority and says so; the bench form's defaults, marks,
fields, focus and last result."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Button, DataTable, Input, Markdown

from coder_tui.core.bench.compare import CompareResult, CompareRun
from coder_tui.core.bench.compare_store import as_bench_result
from coder_tui.core.bench.store import BenchStore
from coder_tui.core.bench.types import DEFAULT_FIXED_LENGTH, DEFAULT_MAX_TOKENS, DEFAULT_RUNS
from coder_tui.core.config.loader import Config
from coder_tui.core.gguf.profile_info import ProfileInfo
from coder_tui.core.paths import app_paths
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui.app import CoderApp
from coder_tui.ui.columns import Column, fit, hidden_note
from coder_tui.ui.screens.bench import BenchScreen
from coder_tui.ui.screens.compare import CompareScreen
from coder_tui.ui.screens.profiles import ProfilesScreen
from coder_tui.ui.widgets.marked import MarkedCheckbox, MarkedSelectionList


def _two(config: Config) -> Config:
    current = config.profile()
    return replace(config, profiles={"q4_k_m": current, "f16": replace(current, name="f16")})


def _app(config: Config, store: HistoryStore) -> CoderApp:
    return CoderApp(config, autostart=False, store=store, sample_metrics=False)


def _on_screen(app: Any, widget: Any) -> bool:
    r, screen = widget.region, app.screen.region
    return r.width > 0 and r.x >= 0 and r.right <= screen.right and r.bottom <= screen.bottom


def _focused_id(screen: Any) -> str | None:
    return None if screen.focused is None else screen.focused.id  # type: ignore[no-any-return]


async def test_compare_at_80x24_has_run_on_screen_and_stacks_replies(
    offline_config: Config, store: HistoryStore
) -> None:
    """At 80x24 the Run button was off-screen (`` A q8_0 ▼  B f16 ▼  runs 1``)."""
    config = _two(offline_config)
    app = _app(config, store)
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.switch is not None and app.manager is not None
        app.push_screen(CompareScreen(config.profiles, app.switch.swapper, app.manager))
        await pilot.pause()
        screen = app.screen
        run = screen.query_one("#run", Button)
        assert _on_screen(app, run)
        # From the prompt (focused first), Tab goes round to Run.
        assert _focused_id(screen) == "prompt-in"
        for _ in range(6):
            if _focused_id(screen) == "run":
                break
            await pilot.press("tab")
        assert screen.focused is run
        a, b = screen.query_one("#col-a"), screen.query_one("#col-b")
        assert b.region.y > a.region.y and a.region.width == b.region.width  # A over B
        assert a.region.height >= 3
    app = _app(config, store)
    async with app.run_test(size=(200, 60)) as pilot:
        assert app.switch is not None and app.manager is not None
        app.push_screen(CompareScreen(config.profiles, app.switch.swapper, app.manager))
        await pilot.pause()
        a, b = app.screen.query_one("#col-a"), app.screen.query_one("#col-b")
        assert b.region.y == a.region.y and b.region.x > a.region.x  # side by side


def test_fit_drops_columns_by_priority() -> None:
    cols = [Column("name", "name", 0), Column("model", "model", 9), Column("load", "load", 2)]
    rows = [{"name": "q4", "model": "x" * 30, "load": "0.3 s"}]
    kept, dropped = fit(cols, rows, 20)
    assert [c.key for c in kept] == ["name", "load"] and [c.key for c in dropped] == ["model"]
    assert hidden_note(dropped) == "hidden at this width: model" and hidden_note([]) == ""
    assert fit(cols, rows, 200) == (cols, [])
    assert [c.key for c in fit(cols, rows, 1)[0]] == ["name"]  # priority 0 always stays


@pytest.mark.parametrize("kind", ["compare", "bench"])
async def test_compare_and_bench_keep_the_serving_header(
    offline_config: Config,
    store: HistoryStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    """The profile/status header was on the chat only; it follows a swap's states here too."""
    from coder_tui.core.server.events import ServerState
    from coder_tui.ui.widgets.server_bar import ServerBar

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    config = _two(offline_config)
    app = _app(config, store)
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.switch is not None and app.manager is not None
        if kind == "compare":
            app.push_screen(CompareScreen(config.profiles, app.switch.swapper, app.manager))
        else:
            app.push_screen(BenchScreen(config, app.manager))
        await pilot.pause()
        bar = app.screen.query_one(ServerBar)
        assert bar.region.y == 0
        assert "q4_k_m" in str(bar.render()) and "stopped" in str(bar.render())
        app.serving = replace(app.serving, state=ServerState.LOADING)
        await pilot.pause()
        assert "loading" in str(bar.render())


async def test_profiles_at_80x24_show_load_and_say_what_is_hidden(
    offline_config: Config, store: HistoryStore
) -> None:
    """At 80x24 the profiles table hid its ``load`` column (scrolled off the right)."""
    current = offline_config.profile()
    iq2 = replace(current, name="iq2_xxs", model=Path("Qwen3-Coder-Next-UD-IQ2_XXS.gguf"))
    infos = {
        "iq2_xxs": ProfileInfo(
            "iq2_xxs", "Qwen3-Coder-Next-UD-IQ2_XXS.gguf", 26 * 2**30, "IQ2_XXS", 48, 42, 10
        ),
        "q4_k_m": ProfileInfo("q4_k_m", "Demo-Q4_K_M.gguf", 2642368, "Q4_K", 2, None, None),
    }
    for size, hidden in (((80, 24), True), ((200, 60), False)):
        app = _app(offline_config, store)
        async with app.run_test(size=size) as pilot:
            app.push_screen(
                ProfilesScreen(
                    {"iq2_xxs": iq2, "q4_k_m": current}, infos, current, {}, {"q4_k_m": 0.27}
                )
            )
            await pilot.pause()
            table = app.screen.query_one(DataTable)
            keys = [k.value for k in table.columns]
            assert "load" in keys and "gen" in keys
            assert table.virtual_size.width <= table.size.width  # nothing scrolled off
            note = str(app.screen.query_one("#hidden").render())
            assert ("hidden at this width: model" in note) is hidden
            assert ("model" in keys) is not hidden


async def test_bench_form_defaults_marks_fields_and_focus(
    offline_config: Config,
    store: HistoryStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The form's defaults were 2 runs of 64 tokens (the CLI's 5 of 256); every box showed
    ``▐X▌`` without colour; the categories field showed ``coding,w``; Tab took 12 presses to
    reach Run; a reopened F9 had lost the last results."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    config = _two(offline_config)
    app = _app(config, store)
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.manager is not None
        app.push_screen(BenchScreen(config, app.manager))
        await pilot.pause()
        screen = app.screen
        assert screen.query_one("#runs", Input).value == str(DEFAULT_RUNS)
        assert screen.query_one("#max-tokens", Input).value == str(DEFAULT_MAX_TOKENS)
        fixed = screen.query_one("#fixed", MarkedCheckbox)
        assert fixed.value is DEFAULT_FIXED_LENGTH and "▐X▌" in str(fixed.render())
        fixed.value = False
        assert "▐ ▌" in str(fixed.render())
        picks = screen.query_one("#profiles", MarkedSelectionList)
        lines = [picks.render_line(y).text for y in range(2)]
        assert sorted(line[:3] for line in lines) == ["▐ ▌", "▐X▌"]  # one picked, one not
        categories = screen.query_one("#categories", Input)
        assert categories.value == "coding,writing,debugging,reasoning"  # the CLI's: all
        assert categories.content_region.width >= len(categories.value)
        assert screen.focused is screen.query_one("#run", Button)  # Enter runs
        assert _on_screen(app, screen.query_one("#run", Button))

    # A stored run shows when the screen opens again (a compare's run is not a bench's).
    runs = tuple(CompareRun(n, "x", "done", 0.1, 500.0, 20.0, 8, None) for n in ("q4_k_m", "f16"))
    compared = as_bench_result(
        CompareResult("p", "q4_k_m", "f16", runs[:1], runs[1:]),
        {},
        max_tokens=8,
        llama_server_version=None,
        started_at=0.0,
    )
    bench = replace(compared, settings=replace(compared.settings, categories=("coding",)))
    db = app_paths().history_db
    db.parent.mkdir(parents=True, exist_ok=True)
    with BenchStore(db) as bench_store:
        run_id = bench_store.save(bench)
        bench_store.save(compared)  # newer, but a compare: skipped
    app = _app(config, store)
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.manager is not None
        app.push_screen(BenchScreen(config, app.manager))
        for _ in range(40):
            await pilot.pause(0.05)
            if f"#{run_id}" in str(app.screen.query_one("#status").render()):
                break
        assert f"Benchmark #{run_id}" in app.screen.query_one("#report-md", Markdown).source
        assert f"last run #{run_id}" in str(app.screen.query_one("#status").render())
