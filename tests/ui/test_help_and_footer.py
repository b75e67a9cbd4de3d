"""Help (F1, ``?``), the key footer at 80 columns and the command palette's app commands."""

from __future__ import annotations

import re

from textual.widgets import Footer

from coder_tui.core.config.loader import Config
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui.app import CoderApp
from coder_tui.ui.keys import key_name
from coder_tui.ui.screens.dashboard import DashboardScreen
from coder_tui.ui.screens.help import HelpScreen, key_lines
from coder_tui.ui.widgets.key_footer import FooterItem, KeyFooter, fit_items


def _app(config: Config, store: HistoryStore) -> CoderApp:
    return CoderApp(config, autostart=False, store=store, sample_metrics=False)


def _footer_text(app: CoderApp) -> str:
    footer = app.screen.query_one(Footer)
    return " ".join(
        f"{getattr(key, 'key_display', '')} {getattr(key, 'description', '')}".strip()
        for key in footer.children
    )


async def test_f1_at_80x24_lists_the_app_keys_with_their_actions(
    offline_config: Config, store: HistoryStore
) -> None:
    app = _app(offline_config, store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = app.screen.text()
        for key, action in (
            ("F2", "start the server"),
            ("F3", "stop the server"),
            ("F5", "stop, then start again"),
            ("F6", "profiles"),
            ("F7", "compare two profiles"),
            ("F9", "benchmark profiles"),
        ):
            assert re.search(rf"^\s+{key}\s+{re.escape(action)}", text, re.M), (key, text)
        # the app's keys, grouped; not Textual's editor keys
        assert (
            text.index("Server") < text.index("Chat") < text.index("Views") < text.index("Global")
        )
        assert "Cursor" not in text and "Delete character" not in text
        await pilot.press("f1")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


async def test_question_mark_opens_help_for_the_screen_showing(
    offline_config: Config, store: HistoryStore
) -> None:
    app = _app(offline_config, store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f4")
        await pilot.pause()
        assert isinstance(app.screen, DashboardScreen)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = app.screen.text()
        assert text.startswith("This screen") and "back to chat" in text.split("Server")[0]
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, DashboardScreen)


async def test_footer_at_80_columns_shows_the_server_keys_and_no_cut_key(
    offline_config: Config, store: HistoryStore
) -> None:
    app = _app(offline_config, store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        shown = _footer_text(app)
        for key in ("F1 Help", "F2 Start", "F3 Stop", "F5 Restart", "F6 Profiles", "F7 Compare"):
            assert key in shown, shown
        footer = app.screen.query_one(Footer)
        assert sum(child.outer_size.width for child in footer.children) <= 80
        assert footer.max_scroll_x == 0  # nothing scrolled out of sight (the `f1 K▏` of before)
        await pilot.press("f4")
        await pilot.pause()
        shown = _footer_text(app)
        assert shown.count("F4") == 1 and "Back to chat" in shown  # not also "F4 Dashboard"
        footer = app.screen.query_one(Footer)
        assert isinstance(footer, KeyFooter) and footer.max_scroll_x == 0


async def test_footer_shows_more_when_wide(offline_config: Config, store: HistoryStore) -> None:
    app = _app(offline_config, store)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        shown = _footer_text(app)
        assert "Copy code" in shown and "Quit" in shown and "palette" in shown


async def test_the_footer_writes_each_key_as_the_help_does(
    offline_config: Config, store: HistoryStore
) -> None:
    """The footer wrote ``esc``, ``^b``, ``^q``, ``^p`` where the help (F1) writes ``Esc``,
    ``Ctrl+B``, ``Ctrl+Q``, ``Ctrl+P``: one spelling everywhere, the help's."""
    app = _app(offline_config, store)
    async with app.run_test(size=(160, 50)) as pilot:
        for opened_by in (None, "f4"):
            if opened_by is not None:
                await pilot.press(opened_by)
            await pilot.pause()
            listed = {(k, line.action) for line in key_lines(app, app.screen) for k in line.keys}
            footer = app.screen.query_one(Footer)
            for item in footer.children:
                display = str(getattr(item, "key_display", ""))
                action = str(getattr(item, "action", ""))
                assert display == key_name(str(getattr(item, "key", ""))), display
                if action != "command_palette":  # the help lists it, under the app's name
                    assert (display, action.split(".")[-1]) in listed or (
                        display,
                        action,
                    ) in listed, (display, action)
            shown = _footer_text(app)
            assert "Ctrl+P palette" in shown and "Ctrl+Q Quit" in shown, shown
            assert not re.search(r"\^|\besc\b", shown), shown
        await pilot.press("f4")  # back to the chat
        await pilot.pause()
        shown = _footer_text(app)
        assert "Esc Cancel" in shown and "Ctrl+B Copy code" in shown, shown


def test_fit_items_keeps_rank_order_and_each_key_once() -> None:
    items = [
        FooterItem("F4", "Back to chat", "app.pop_screen"),
        FooterItem("F4", "Dash", "dashboard"),
        FooterItem("Ctrl+Q", "Quit", "quit"),
        FooterItem("F1", "Help", "toggle_help"),
        FooterItem("F2", "Start", "start"),
    ]
    shown, _ = fit_items(items, 80)
    assert [items[i].key for i in shown] == ["F1", "F4", "F2", "Ctrl+Q"]
    assert items[shown[1]].description == "Back to chat"
    shown, fits_palette = fit_items(items, 8)
    assert [items[i].key for i in shown] == ["F1"] and not fits_palette


def test_key_names_read_as_people_write_them() -> None:
    keys = ("f2", "ctrl+b", "escape", "question_mark", "q", "slash", "left")
    assert [key_name(k) for k in keys] == ["F2", "Ctrl+B", "Esc", "?", "q", "/", "Left"]


async def test_command_palette_offers_the_app_commands(
    offline_config: Config, store: HistoryStore
) -> None:
    app = _app(offline_config, store)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in (
            "Start server",
            "Stop server",
            "Restart server",
            "Swap to profile q4_k_m",
            "Compare profiles",
            "Bench",
            "Open dashboard",
            "Theme",
            "Copy code block",
            "New conversation",
            "Export conversation",
        ):
            assert title in titles, titles
        assert "Keys" not in titles  # Textual's generic panel: F1 is the app's help
