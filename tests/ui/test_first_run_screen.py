"""The first run in the TUI (no config: the choices, and where the config goes) and the empty
chat's hint."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import OptionList, Static

from coder_tui.core.config.loader import Config
from coder_tui.core.config.starter import FirstRunOffer, FoundModel
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui.app import CoderApp
from coder_tui.ui.screens.first_run import FirstRunScreen


def _offer(tmp_path: Path, models: int) -> FirstRunOffer:
    found = tuple(FoundModel(tmp_path / f"m{i}.gguf", 1) for i in range(models))
    return FirstRunOffer(tmp_path / "config.toml", (tmp_path,), found)


async def test_first_run_offers_demo_starter_and_models_and_says_where(tmp_path: Path) -> None:
    app = CoderApp(None, first_run=_offer(tmp_path, 2), autostart=False, sample_metrics=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, FirstRunScreen)
        text = " ".join(str(w.render()) for w in app.screen.query(Static))
        assert str(tmp_path / "config.toml") in text
        options = app.screen.query_one(OptionList)
        prompts = [str(options.get_option_at_index(i).prompt) for i in range(3)]
        assert "demo" in prompts[0] and "config.example.toml" in prompts[1]
        assert "2 GGUF file(s)" in prompts[2]
        await pilot.press("3")
        await pilot.pause()
    assert app.first_run_choice == "models"


async def test_first_run_without_models_cannot_pick_them(tmp_path: Path) -> None:
    app = CoderApp(None, first_run=_offer(tmp_path, 0), autostart=False, sample_metrics=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await pilot.pause()
        assert isinstance(app.screen, FirstRunScreen)
        await pilot.press("1")
        await pilot.pause()
    assert app.first_run_choice == "demo"


async def test_an_empty_chat_says_what_to_do_next(
    offline_config: Config, store: HistoryStore
) -> None:
    app = CoderApp(offline_config, autostart=False, store=store, sample_metrics=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        hint = app.screen.query_one("#empty-hint", Static)
        text = str(hint.render())
        assert "type a prompt below" in text and "F2 starts the server" in text
        assert "F1 lists the keys" in text
