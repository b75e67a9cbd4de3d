"""Two chat turns against a running llama-server, with no UI: run by
``test_chat_session_real.py`` in a fresh interpreter where Textual and Rich cannot be imported.

    python headless_turn.py CONFIG URL HISTORY_DB

The first turn runs to its end (48 tokens), the second is cancelled at its first text. Each turn
event is printed as one JSON line; the last line names the UI modules that got imported (none).
"""

from __future__ import annotations

import asyncio
import json
import sys
from contextlib import aclosing
from dataclasses import replace
from pathlib import Path
from typing import Any

from coder_tui.core.chat.events import DecodeProgress
from coder_tui.core.chat.pacing import BusyPace
from coder_tui.core.chat.session import ChatTurn
from coder_tui.core.chat.turn_events import (
    PaceChanged,
    PromptSaved,
    ReplyStarted,
    ReplyText,
    TurnEnded,
    TurnEvent,
)
from coder_tui.core.config.loader import load_config
from coder_tui.core.store.history import HistoryStore


def describe(turn: int, event: TurnEvent) -> dict[str, Any]:
    out: dict[str, Any] = {"turn": turn, "event": type(event).__name__}
    if isinstance(event, PromptSaved):
        out |= {"conversation": event.conversation.id, "prompt": event.message.content}
    elif isinstance(event, ReplyStarted):
        out |= {"message_id": event.message_id, "who": event.who, "quiet": event.quiet}
    elif isinstance(event, PaceChanged):
        out |= {"interval_s": event.interval_s, "cpu_saturated": event.cpu_saturated}
    elif isinstance(event, ReplyText):
        out |= {"text": event.text}
    elif isinstance(event, DecodeProgress):
        out |= {"n_decoded": event.n_decoded}
    elif isinstance(event, TurnEnded):
        message = event.message
        out |= {
            "status": event.status,
            "end": event.end.status,
            "content": message.content if message else None,
            "completion_tokens": message.completion_tokens if message else None,
        }
    return out


async def main(config_path: str, url: str, db: str) -> None:
    config = load_config(Path(config_path))
    chat = replace(config.chat, quiet_above_tps=0.0)  # always streamed: the cancel needs text
    pace = BusyPace(chat.busy_refresh_s)
    with HistoryStore(Path(db)) as store:
        conversation = None
        for n, (prompt, tokens) in enumerate(
            [("Write a Python function that adds two numbers.", 48), ("And multiplies?", 4000)]
        ):
            turn = ChatTurn(
                store,
                chat,
                server_url=url,
                profile=config.profile("q4_k_m"),
                conversation=conversation,
                prompt=prompt,
                pace=pace,
                extra={"ignore_eos": True, "max_tokens": tokens, "seed": 1},
            )
            async with aclosing(turn.events()) as events:
                async for event in events:
                    print(json.dumps(describe(n, event)), flush=True)
                    if n == 1 and isinstance(event, ReplyText):
                        turn.cancel()
            conversation = turn.conversation
    ui = sorted(m for m in sys.modules if m.split(".")[0] in ("textual", "rich"))
    print(json.dumps({"event": "modules", "ui": ui}))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
