"""Conversation tools without a server: the settings modal, the messages modal, search."""

from __future__ import annotations

from textual.widgets import Input, OptionList, Static, TextArea

from coder_tui.core.config.loader import Config
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui.app import CoderApp
from coder_tui.ui.screens.chat_settings import ChatSettingsScreen
from coder_tui.ui.screens.conversations import ConversationsScreen
from coder_tui.ui.screens.main import MainScreen
from coder_tui.ui.screens.messages import MessagesScreen
from coder_tui.ui.widgets.message import MessageView


async def test_settings_modal_refuses_a_bad_value_then_stores(
    offline_config: Config, store: HistoryStore, seeded: int
) -> None:
    app = CoderApp(offline_config, autostart=False, store=store)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+o")
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, ChatSettingsScreen)
        modal.query_one("#system", TextArea).load_text("Only code.")
        modal.query_one("#top_p", Input).value = "2"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is modal  # stays open, says why in one line
        assert str(modal.query_one("#error", Static).render()) == "top-p: 2 is outside 0 to 1"
        modal.query_one("#top_p", Input).value = "0.8"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
    conv = store.conversation(seeded)
    assert conv is not None and (conv.system_prompt, conv.top_p) == ("Only code.", 0.8)


async def test_messages_modal_deletes_and_search_finds(
    offline_config: Config, store: HistoryStore, seeded: int
) -> None:
    app = CoderApp(offline_config, autostart=False, store=store)
    async with app.run_test(size=(100, 30)) as pilot:
        main = app.screen
        assert isinstance(main, MainScreen)
        await pilot.press("ctrl+g")
        await pilot.pause()
        assert isinstance(app.screen, MessagesScreen)
        await pilot.press("t")  # the last turn: the collision prompt and its interrupted reply
        await pilot.press("escape")
        await pilot.pause()
        assert [v.role for v in main.query(MessageView)] == ["user", "assistant"]
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert isinstance(app.screen, ConversationsScreen)
        await pilot.press("slash", *"tick")
        await pilot.pause()
        options = app.screen.query_one(OptionList)
        assert options.option_count == 1
        assert "function [tick]()" in str(options.get_option_at_index(0).prompt)
        await pilot.press(*"zzz")
        await pilot.pause()
        assert options.option_count == 0
    assert store.messages(seeded)[0].content.startswith("Write a tiny snake")
    assert store.search("collision") == []
