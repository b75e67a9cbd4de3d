"""Themes (shipped, user, broken, persisted), the Connect panel, and every listed key doing something."""

from __future__ import annotations

from pathlib import Path

import pytest

from coder_tui.core.config.app_state import load_state
from coder_tui.core.config.loader import Config
from coder_tui.core.paths import app_paths
from coder_tui.core.server.agent_env import env_lines
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui.app import CoderApp
from coder_tui.ui.screens.connect import ConnectScreen
from coder_tui.ui.screens.dashboard import DashboardScreen
from coder_tui.ui.screens.help import HelpScreen
from coder_tui.ui.themes import builtin_themes_dir, load_theme_file, load_themes


def test_shipped_themes_load() -> None:
    themes, problems = load_themes(builtin_themes_dir())
    names = {t.name for t in themes}
    assert problems == []
    assert {"coder-dark", "coder-light", "high-contrast"} <= names and len(names) >= 4
    assert any(not t.dark for t in themes)


def test_broken_theme_names_file_line_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\nprimary = "#12345"\nbackground = "nope"\nglow = 1\n')
    theme, problems = load_theme_file(bad)
    assert theme is None
    assert [str(p) for p in problems] == [
        "bad.toml:4: glow: unknown key",
        "bad.toml:2: primary: not a colour: '#12345'",
        "bad.toml:3: background: not a colour: 'nope'",
    ]


@pytest.fixture
def user_themes() -> Path:
    folder = app_paths().config_dir / "themes"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mine.toml").write_text('name = "mine"\ndark = false\nprimary = "#336699"\n')
    (folder / "broken.toml").write_text('name = "broken"\nprimary = 12\n')
    yield folder
    for f in folder.glob("*.toml"):
        f.unlink()
    state = app_paths().state_file
    if state.exists():
        state.unlink()


async def test_theme_switch_persists_and_broken_theme_is_reported(
    offline_config: Config, store: HistoryStore, user_themes: Path
) -> None:
    app = CoderApp(offline_config, autostart=False, store=store, sample_metrics=False)
    async with app.run_test(size=(100, 30)) as pilot:
        assert app.theme == "coder-dark"
        assert "mine" in app.available_themes and "broken" not in app.available_themes
        messages = [n.message for n in app._notifications]
        assert any("broken.toml:2: primary: not a colour" in m for m in messages)
        app.theme = "coder-light"
        await pilot.pause()
    assert load_state(app_paths().state_file)["theme"] == "coder-light"
    again = CoderApp(offline_config, autostart=False, store=store, sample_metrics=False)
    async with again.run_test(size=(100, 30)):
        assert again.theme == "coder-light"


async def test_connect_panel_shows_env_lines_and_copies(
    offline_config: Config, store: HistoryStore
) -> None:
    app = CoderApp(offline_config, autostart=False, store=store, sample_metrics=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f8")
        await pilot.pause()
        assert isinstance(app.screen, ConnectScreen)
        await pilot.press("c")
        expected = env_lines("http://127.0.0.1:8084", "Demo-Q4_K_M")
        assert app.clipboard == "\n".join(expected) + "\n"
        await pilot.press("escape")
        assert not isinstance(app.screen, ConnectScreen)


async def test_every_shown_key_does_something(offline_config: Config, store: HistoryStore) -> None:
    """Each binding in the footer/help runs an action that exists (no dead keys)."""
    app = CoderApp(offline_config, autostart=False, store=store, sample_metrics=False)
    async with app.run_test(size=(160, 50)) as pilot:
        bindings = app.screen.active_bindings
        for key, active in bindings.items():
            binding = active.binding
            target = active.node
            action = binding.action.split("(")[0].removeprefix("app.").removeprefix("screen.")
            assert hasattr(target, f"action_{action}") or hasattr(app, f"action_{action}"), key
        await pilot.press("f4")
        await pilot.pause()
        assert isinstance(app.screen, DashboardScreen)
        await pilot.press("f4")
        await pilot.pause()
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("f1")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


async def test_ctrl_z_suspends_except_in_the_prompt(
    offline_config: Config, store: HistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl+Z suspends the app as in a shell (the terminal's own is off under Textual); in the
    prompt it stays the editor's undo."""
    from textual.widgets import TextArea

    app = CoderApp(offline_config, autostart=False, store=store, sample_metrics=False)
    suspended: list[bool] = []
    monkeypatch.setattr(app, "action_suspend_process", lambda: suspended.append(True))
    async with app.run_test(size=(160, 50)) as pilot:
        prompt = app.screen.query_one(TextArea)
        prompt.focus()
        await pilot.press("a", "b")
        await pilot.pause()
        assert prompt.text == "ab"
        await pilot.press("ctrl+z")
        await pilot.pause()
        assert prompt.text == "" and suspended == []
        await pilot.press("f4")
        await pilot.pause()
        assert isinstance(app.screen, DashboardScreen)
        await pilot.press("ctrl+z")
        await pilot.pause()
        assert suspended == [True]
