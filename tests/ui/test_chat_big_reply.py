"""A huge reply in the chat: drawn folded from history, opened whole with Ctrl+T."""

from __future__ import annotations

import time

from textual.widgets import TextArea

from coder_tui.core.config.loader import Config
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui.app import CoderApp
from coder_tui.ui.screens.main import MainScreen
from coder_tui.ui.screens.reply_viewer import ReplyViewer
from coder_tui.ui.widgets.message import MessageView

CODE = "".join(f"row_{i} = load({i})\n" for i in range(200_000))  # about 4 MB


async def test_a_huge_reply_reopens_folded_and_opens_whole(
    offline_config: Config, store: HistoryStore
) -> None:
    conv = store.new_conversation("Huge")
    store.add_user_message(conv.id, "dump it", "q4_k_m")
    reply = store.begin_reply(conv.id, "q4_k_m", "Demo-Q4_K_M.gguf")
    text = f"Here:\n\n```python\n{CODE}```\n"
    store.finish_reply(reply, text, "complete")
    app = CoderApp(offline_config, autostart=False, store=store, sample_metrics=False)
    start = time.monotonic()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert time.monotonic() - start < 5  # drawn folded: what shows, not 4 MB of Markdown
        main = app.screen
        assert isinstance(main, MainScreen)
        body = main.query(MessageView).last().body
        assert "lines folded" in body.source and len(body.source) < 5_000
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert isinstance(app.screen, ReplyViewer)
        assert app.screen.query_one(TextArea).text == text  # the stored reply, whole
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is main
