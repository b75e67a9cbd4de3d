"""A conversation longer than the context, against the real llama-server on the demo model (4,096
tokens): a paste too big is refused with its size, the next message gets a normal reply, and a
conversation that holds such a message (stored by an earlier version) answers again, its oldest
turns left out of the request and the chat marking where the model's view starts."""

from __future__ import annotations

from pathlib import Path

from coder_tui.core.config.loader import Config
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui.app import CoderApp
from coder_tui.ui.screens.main import MainScreen
from coder_tui.ui.widgets.chat_view import ChatView, ContextMark
from coder_tui.ui.widgets.message import MessageView
from coder_tui.ui.widgets.prompt import PromptInput

from .util import until

PASTE = "".join(f"line {i}: def handler_{i}(request): return request.json()\n" for i in range(300))
"""About 17,000 characters of code, far beyond the demo's 4,096-token context."""


async def _ready(app: CoderApp) -> MainScreen:
    await until(lambda: app.main is not None and app.main.server_ready)
    assert isinstance(app.screen, MainScreen)
    return app.screen


def _notices(app: CoderApp) -> list[str]:
    return [n.message for n in app._notifications]


async def test_a_paste_too_big_is_refused_and_the_chat_goes_on(
    demo_config: Config, tmp_path: Path
) -> None:
    assert 16_000 < len(PASTE) < 18_000
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        app = CoderApp(demo_config, store=store)
        async with app.run_test(size=(120, 40)) as pilot:
            main = await _ready(app)
            prompt = main.query_one(PromptInput)
            prompt.post_message(PromptInput.Submitted(prompt, PASTE))
            await until(lambda: any("message not sent" in n for n in _notices(app)), 30)
            await until(lambda: not main.generating, 30)
            notice = next(n for n in _notices(app) if "message not sent" in n)
            assert "tokens" in notice and "(4,096)" in notice, notice
            assert main.conversation is None and not main.query(MessageView)  # nothing stored
            assert prompt.text == PASTE  # given back
            prompt.clear()
            await pilot.press(*"short follow-up", "enter")
            await until(lambda: main.conversation is not None, 10)
            conv = main.conversation
            assert conv is not None
            await until(lambda: len(store.messages(conv.id)) == 2 and not main.generating, 60)
            reply = store.messages(conv.id)[-1]
            assert reply.status == "complete" and reply.content, reply
            gauge = str(prompt.border_subtitle)
            assert gauge.startswith("context ") and "/ 4,096" in gauge, gauge


async def test_a_conversation_holding_a_paste_answers_again_and_marks_the_view(
    demo_config: Config, tmp_path: Path
) -> None:
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        # As the issue found it: the paste stored, its reply an HTTP 400, every later one too.
        conv = store.new_conversation(system_prompt=None)
        store.add_user_message(conv.id, PASTE, "q4_k_m")
        failed = store.begin_reply(conv.id, "q4_k_m", None)
        error = "HTTP 400: request (13717 tokens) exceeds the available context size"
        store.finish_reply(failed, "", "error", error=error)
        app = CoderApp(demo_config, store=store)
        async with app.run_test(size=(120, 40)) as pilot:
            main = await _ready(app)
            assert main.conversation is not None and main.conversation.id == conv.id
            chat = main.query_one(ChatView)
            # Opened: counted against the context as soon as the server is ready.
            await until(lambda: "/ 4,096" in str(chat.prompt.border_subtitle), 30)
            await pilot.press(*"short follow-up", "enter")
            await until(lambda: len(store.messages(conv.id)) == 4 and not main.generating, 60)
            msgs = store.messages(conv.id)
            assert msgs[0].content == PASTE  # left out of the request, never out of history
            reply = msgs[-1]
            assert reply.status == "complete" and reply.content, reply
            assert reply.prompt_tokens is not None and reply.prompt_tokens < 4096
            children = list(chat.transcript.children)
            marks = [i for i, w in enumerate(children) if isinstance(w, ContextMark)]
            assert len(marks) == 1
            below = children[marks[0] + 1]
            assert isinstance(below, MessageView) and below.message_id == msgs[2].id
            assert any("left out of the request" in n for n in _notices(app))
