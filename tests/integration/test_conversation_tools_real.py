"""Conversation tools in the app against the real llama-server on the demo model: settings of
the conversation used by the request, regenerate (the earlier answer kept as an alternative),
edit and resend, delete, search, the profile and quant of each reply; then a restart (a new app
on the reopened history file) shows all of it again."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input, OptionList, TextArea

from coder_tui.core.config.loader import Config
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui.app import CoderApp
from coder_tui.ui.screens.chat_settings import ChatSettingsScreen
from coder_tui.ui.screens.conversations import ConversationsScreen
from coder_tui.ui.screens.main import MainScreen
from coder_tui.ui.screens.messages import MessagesScreen
from coder_tui.ui.widgets.message import MessageView

from .util import until

MAX_TOKENS = 5


def _texts(store: HistoryStore, main: MainScreen) -> list[str]:
    assert main.conversation is not None
    return [m.content for m in store.messages(main.conversation.id)]


async def _answered(main: MainScreen, store: HistoryStore, n: int) -> None:
    def done() -> bool:
        if main.generating or main.conversation is None:
            return False
        msgs = store.messages(main.conversation.id)
        return len(msgs) == n and msgs[-1].status != "streaming"

    await until(done)


async def test_edit_delete_regenerate_search_survive_a_restart(
    demo_config: Config, tmp_path: Path
) -> None:
    db = tmp_path / "h.sqlite3"
    with HistoryStore(db) as store:
        app = CoderApp(demo_config, store=store)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(lambda: app.main is not None and app.main.server_ready)
            main = app.main
            assert main is not None
            main.request_extra = {"ignore_eos": True}  # every reply runs to its max tokens
            # The conversation's own settings, set in the app before the first prompt.
            await pilot.press("ctrl+o")
            await until(lambda: isinstance(app.screen, ChatSettingsScreen))
            app.screen.query_one("#system", TextArea).load_text("You answer briefly.")
            app.screen.query_one("#temperature", Input).value = "0"
            app.screen.query_one("#max_tokens", Input).value = str(MAX_TOKENS)
            await pilot.press("ctrl+s")
            await until(lambda: app.screen is main)
            for n, prompt in enumerate(("alpha question", "beta question"), start=1):
                main.query_one("PromptInput", TextArea).load_text(prompt)
                await pilot.press("enter")
                await _answered(main, store, 2 * n)
            replies = [m for m in store.messages(main.conversation.id) if m.role == "assistant"]  # type: ignore[union-attr]
            assert [m.completion_tokens for m in replies] == [MAX_TOKENS, MAX_TOKENS]
            assert {(m.profile, m.quant) for m in replies} == {("q4_k_m", "Q4_K_M")}
            stats = str(main.query(MessageView).last().query_one(".stats").render())
            assert stats.startswith("q4_k_m · Q4_K_M · complete")
            first_reply = replies[0]

            # Regenerate the first reply (from the middle of the conversation).
            await pilot.press("ctrl+g")
            await until(lambda: isinstance(app.screen, MessagesScreen))
            app.screen.query_one(OptionList).highlighted = 1
            await pilot.press("g")
            await until(lambda: main.generating or app.screen is main)
            await until(lambda: not main.generating)
            await _answered(main, store, 4)
            shown = store.messages(main.conversation.id)  # type: ignore[union-attr]
            assert [m.role for m in shown] == ["user", "assistant", "user", "assistant"]
            assert (shown[1].alternative, shown[1].alternatives) == (2, 2)
            assert store.alternatives(shown[1].id)[0].id == first_reply.id
            assert len(main.query(MessageView)) == 4

            # Edit the second prompt and resend from there.
            await pilot.press("ctrl+g")
            await until(lambda: isinstance(app.screen, MessagesScreen))
            app.screen.query_one(OptionList).highlighted = 2
            await pilot.press("e")
            app.screen.query_one(TextArea).load_text("beta edited")
            await pilot.press("ctrl+s")
            await until(lambda: main.generating or app.screen is main)
            await _answered(main, store, 4)
            assert _texts(store, main)[2] == "beta edited"

            # Delete the last reply, then flip the first reply back to its first answer.
            await pilot.press("ctrl+g")
            await until(lambda: isinstance(app.screen, MessagesScreen))
            await pilot.press("d")
            app.screen.query_one(OptionList).highlighted = 1
            await pilot.press("left")
            await pilot.press("escape")
            await until(lambda: app.screen is main)
            await until(lambda: len(main.query(MessageView)) == 3)
            assert _texts(store, main)[:3] == ["alpha question", first_reply.content, "beta edited"]

            # Search from the conversations screen.
            await pilot.press("ctrl+l")
            await until(lambda: isinstance(app.screen, ConversationsScreen))
            await pilot.press("slash", *"beta")
            options = app.screen.query_one(OptionList)
            await until(lambda: options.option_count == 1)
            assert "[beta] edited" in str(options.get_option_at_index(0).prompt)
            await pilot.press("escape", "escape")
            conv_id = main.conversation.id  # type: ignore[union-attr]

    # A restart: a new store on the file, a new app.
    with HistoryStore(db) as again:
        assert [h.conversation.id for h in again.search("edited")] == [conv_id]
        conv = again.conversation(conv_id)
        assert conv is not None and conv.max_tokens == MAX_TOKENS and conv.temperature == 0
        app = CoderApp(demo_config, store=again, autostart=False)
        async with app.run_test(size=(120, 40)):
            main = app.main
            assert main is not None and main.conversation is not None
            assert main.conversation.id == conv_id
            views = list(main.query(MessageView))
            assert [v.role for v in views] == ["user", "assistant", "user"]
            assert "answer 1 of 2" in str(views[1].query_one(".who").render())
            assert str(views[2].body.source) == "beta edited"
