"""One chat turn drawn in the chat pane (``ui/widgets/chat_turn.py``), from a scripted server: the
messages, the reply's text and footer, a quiet reply's count, and the cursor held while no core is
idle. The real server's turn through the whole app is ``tests/integration/test_chat_ui.py``."""

from __future__ import annotations

import asyncio
import json
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from textual.app import App, ComposeResult

from coder_tui.core.chat.pacing import BusyPace
from coder_tui.core.chat.session import ChatTurn, PaceChanged, ReplyText
from coder_tui.core.config.schema import ChatSettings, Profile
from coder_tui.core.store.history import HistoryStore
from coder_tui.core.store.schema import DecodeRun
from coder_tui.ui.widgets.chat_turn import TurnRenderer
from coder_tui.ui.widgets.chat_view import ChatView
from coder_tui.ui.widgets.message import MessageView

REPLY = ["Here:\n\n", "```py\n", "x = 1\n", "```\n", "done"]
TIMINGS = {"prompt_n": 3, "predicted_n": 20, "predicted_per_second": 250.0}


def _sse(obj: object) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


async def _server(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/slots":
        return httpx.Response(200, json=[{"id": 0, "is_processing": False}])
    if not json.loads(request.content)["stream"]:
        await asyncio.sleep(0.2)
        message = {"content": "".join(REPLY)}
        choice = {"index": 0, "finish_reason": "stop", "message": message}
        return httpx.Response(200, json={"choices": [choice], "timings": TIMINGS})
    chunks = [_sse({"choices": [{"index": 0, "delta": {"content": t}}]}) for t in REPLY]
    chunks.append(_sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    chunks += [_sse({"choices": [], "timings": TIMINGS}), b"data: [DONE]\n\n"]
    return httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=b"".join(chunks)
    )


class Cores:
    def __init__(self, idle: float) -> None:
        self.idle = idle

    def elapsed_s(self) -> float:
        return 1.0

    def sample(self) -> float:
        return self.idle


class Pane(App[None]):
    def compose(self) -> ComposeResult:
        yield ChatView()


def _turn(store: HistoryStore, tmp_path: Path, *, idle: float, quiet: bool = False) -> ChatTurn:
    if quiet:
        store.record_decode("q4", "Demo.gguf", DecodeRun(330.0, True))
    return ChatTurn(
        store,
        ChatSettings(quiet_above_tps=100.0 if quiet else 0.0),
        server_url="http://127.0.0.1:9",
        profile=Profile(name="q4", model=tmp_path / "Demo.gguf"),
        conversation=None,
        prompt="write x",
        pace=BusyPace(0.5, idle=Cores(idle)),  # type: ignore[arg-type]
        transport=httpx.MockTransport(_server),
    )


@dataclass
class Drawn:
    """The pane after the turn, and the cursor's blink and the reply's stats line at its events."""

    messages: list[tuple[str, str]] = field(default_factory=list)
    """(role, Markdown source) of each message."""
    footer: str = ""
    blinks: list[bool] = field(default_factory=list)
    """At each text or pace event, then once after the turn."""
    stats: list[str] = field(default_factory=list)


async def _run(tmp_path: Path, *, idle: float = 4.0, quiet: bool = False) -> Drawn:
    drawn = Drawn()
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        app = Pane()
        async with app.run_test(size=(100, 40)) as pilot:
            chat = app.query_one(ChatView)
            renderer = TurnRenderer(chat, _turn(store, tmp_path, idle=idle, quiet=quiet))
            async with aclosing(renderer.run()) as events:
                async for event in events:
                    if isinstance(event, ReplyText | PaceChanged):
                        drawn.blinks.append(chat.prompt.cursor_blink)
                    if renderer.view is not None:
                        drawn.stats.append(str(renderer.view.query_one(".stats").render()))
            await pilot.pause()
            drawn.blinks.append(chat.prompt.cursor_blink)
            views = list(app.query(MessageView))
            drawn.messages = [(v.role, v.body.source) for v in views]
            drawn.footer = str(views[-1].query_one(".stats").render())
    return drawn


async def test_a_streamed_turn_is_drawn_whole_with_its_footer(tmp_path: Path) -> None:
    drawn = await _run(tmp_path)
    # The open fence joined the body at the end: the reply is its Markdown, as from history.
    assert drawn.messages == [("user", "write x"), ("assistant", "".join(REPLY))]
    assert drawn.footer.startswith("q4 · complete") and "drawn every" not in drawn.footer
    assert all(drawn.blinks)  # a core is idle: the cursor blinks throughout


async def test_with_no_idle_core_the_cursor_holds_and_the_footer_says_so(tmp_path: Path) -> None:
    drawn = await _run(tmp_path, idle=0.0)
    assert "drawn every 0.5 s (no idle CPU core)" in drawn.footer
    # Held while the reply streamed, then released.
    assert not any(drawn.blinks[:-1]) and drawn.blinks[-1]


async def test_a_quiet_turn_counts_then_shows_the_whole_reply(tmp_path: Path) -> None:
    drawn = await _run(tmp_path, idle=0.0, quiet=True)
    assert drawn.stats[0].startswith("0 tokens after 0 s")  # laid out before the request
    assert drawn.messages[-1] == ("assistant", "".join(REPLY))
    assert "asked whole" in drawn.footer
    assert not any(drawn.blinks[:-1]) and drawn.blinks[-1]
