"""SVG snapshots of the chat holding more than the model sees (issue 21), at 80x24 and 160x50:
the context gauge in the prompt's frame, the mark above the first message of the model's view
(older turns left out of the request), and a huge code block drawn folded (its first and last
lines, a line saying how many are folded and the key that opens it whole).

Offline (the server never starts), so the gauge and the mark are set as a turn sets them
(``ChatView.show_context``, ``ChatView.mark_view_start``); the fold keeps 3 lines at each end of
the block so that all three fit an 80x24 screen. Regenerate with
``pytest tests/ui/test_snapshots_chat_context.py --snapshot-update``.
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot

import coder_tui.core.chat.fold as fold
from coder_tui.core.config.loader import Config
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui.app import CoderApp
from coder_tui.ui.widgets.chat_view import ChatView, ContextMark

CODE = "".join(f"row_{i} = load({i})\n" for i in range(12_000))


def _seed(store: HistoryStore) -> int:
    """A pasted log, its reply, then a prompt whose reply holds a 12,000-line code block; the
    id of the second prompt (where the model's view starts)."""
    conv = store.new_conversation("Huge data")
    store.add_user_message(conv.id, "line 1 of a long log\n" * 300, "q4_k_m")
    first = store.begin_reply(conv.id, "q4_k_m", "Demo-Q4_K_M.gguf")
    store.finish_reply(first, "The log shows a timeout.", "complete", completion_tokens=6)
    second = store.add_user_message(conv.id, "Dump the table as Python.", "q4_k_m")
    reply = store.begin_reply(conv.id, "q4_k_m", "Demo-Q4_K_M.gguf")
    store.finish_reply(
        reply,
        f"Here:\n\n```python\n{CODE}```\n",
        "complete",
        prompt_tokens=3012,
        completion_tokens=1000,
        finish_reason="length",
    )
    return second.id


@pytest.mark.parametrize("size", [(80, 24), (160, 50)], ids=["80x24", "160x50"])
def test_chat_with_gauge_mark_and_folded_block(
    snap_compare: Any,
    offline_config: Config,
    store: HistoryStore,
    monkeypatch: pytest.MonkeyPatch,
    size: tuple[int, int],
) -> None:
    monkeypatch.setattr(fold, "CODE_HEAD", 3)
    monkeypatch.setattr(fold, "CODE_TAIL", 3)
    view_start = _seed(store)

    async def show(pilot: Pilot[Any]) -> None:
        chat = pilot.app.screen.query_one(ChatView)
        chat.show_context(4012, 4096)
        await chat.mark_view_start(view_start)
        await pilot.pause(0.2)
        mark = chat.transcript.query_one(ContextMark)
        chat.transcript.scroll_to_widget(mark, animate=False, top=True)
        previous = ""
        for _ in range(40):  # until two frames in a row are the same
            await pilot.pause(0.05)
            frame = pilot.app.export_screenshot()
            if frame == previous:
                return
            previous = frame
        raise AssertionError("the chat kept changing for 2 s")

    app = CoderApp(offline_config, autostart=False, store=store, sample_metrics=False)
    assert snap_compare(app, terminal_size=size, run_before=show)
