"""A stand-in coder-tui for the fault suite: ServerManager, HistoryStore and ChatClient in one process.

    python driver.py BINARY PORT RUN_DIR MODEL DB PHASE

It saves a prompt first (as the app does before sending), starts the server, and with PHASE
``generate`` streams a reply, saving the text every 5 deltas. Each step prints one line
(``prompt ID``, ``server PID``, ``ready``, ``saved N``) so the test knows when to SIGKILL it. It
never stops the server itself: the server must die through its parent-death signal.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from coder_tui.core.chat.client import ChatClient, Delta
from coder_tui.core.config.loader import Profile, ServerSettings
from coder_tui.core.server.events import ServerEvent, ServerState, StateChanged
from coder_tui.core.server.process import ServerManager
from coder_tui.core.store.history import HistoryStore

PROMPT = "write a long reply"


async def main() -> None:
    binary, port, run_dir, model, db, phase = sys.argv[1:7]
    settings = ServerSettings(binary=Path(binary), port=int(port), ready_timeout_s=60)
    mgr = ServerManager(settings, log_dir=Path(run_dir) / "logs", run_dir=Path(run_dir))
    store = HistoryStore(Path(db))
    conv = store.new_conversation()
    print(f"prompt {store.add_user_message(conv.id, PROMPT).id}", flush=True)

    def on_event(event: ServerEvent) -> None:
        if isinstance(event, StateChanged) and event.state is ServerState.LOADING:
            print(f"server {mgr.pid}", flush=True)

    mgr.add_listener(on_event)
    await mgr.start(Profile(name="p", model=Path(model)))
    print("ready", flush=True)
    if phase == "generate":
        msg_id = store.begin_reply(conv.id, "p", Path(model).name)
        parts: list[str] = []
        async with ChatClient(mgr.url) as client:
            async for event in client.stream_chat([{"role": "user", "content": PROMPT}]):
                if isinstance(event, Delta):
                    parts.append(event.text)
                    if len(parts) % 5 == 0:
                        store.update_reply(msg_id, "".join(parts))
                        print(f"saved {len(''.join(parts))}", flush=True)
    await asyncio.sleep(3600)


asyncio.run(main())
