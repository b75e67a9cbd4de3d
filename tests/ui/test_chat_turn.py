"""One chat turn drawn in the chat pane (``ui/widgets/chat_turn.py``), from a scripted server: the
messages, the reply's text and footer, a quiet reply's count, and the cursor held while no core is
idle. The real server's turn through the whole app is ``tests/integration/test_chat_ui.py``."""

from __future__ import annotations

import json
import sys
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from textual.app import App, ComposeResult

from coder_tui.core.chat.pacing import BusyPace
from coder_tui.core.chat.session import ChatTurn
from coder_tui.core.chat.turn_events import PaceChanged, ReplyText
from coder_tui.core.config.identity import profile_identity
from coder_tui.core.config.schema import ChatSettings, Profile
from coder_tui.core.store.history import HistoryStore
from coder_tui.core.store.schema import DecodeOwner, DecodeRun
from coder_tui.ui.widgets.chat_turn import TurnRenderer
from coder_tui.ui.widgets.chat_view import ChatView, ContextMark
from coder_tui.ui.widgets.message import MessageView

REPLY = ["Here:\n\n", "```py\n", "x = 1\n", "```\n", "done"]
TIMINGS = {"prompt_n": 3, "predicted_n": 20, "predicted_per_second": 250.0}


def _sse(obj: object) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


N_CTX = 4096


async def _server(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/slots":
        return httpx.Response(200, json=[{"id": 0, "is_processing": False, "n_ctx": N_CTX}])
    if request.url.path == "/tokenize":  # one token a word
        words = json.loads(request.content)["content"].split()
        return httpx.Response(200, json={"tokens": list(range(len(words)))})
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


def _turn(
    store: HistoryStore,
    tmp_path: Path,
    *,
    idle: float,
    quiet: bool = False,
    prompt: str = "write x",
) -> ChatTurn:
    profile = Profile(name="q4", model=tmp_path / "Demo.gguf")
    if quiet:
        owner = DecodeOwner(profile_identity(profile), "http://127.0.0.1:9")
        store.record_decode(owner, DecodeRun(330.0, True))
    return ChatTurn(
        store,
        ChatSettings(quiet_above_tps=100.0 if quiet else 0.0),
        server_url="http://127.0.0.1:9",
        profile=profile,
        conversation=store.last_conversation(),
        prompt=prompt,
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
    gauge: str = ""
    """The context gauge in the prompt's frame."""
    bars: list[bool] = field(default_factory=list)
    """Whether the reply had its left bar at each text event, then once after the turn."""
    marks: list[int | None] = field(default_factory=list)
    """Index among the messages of each one with the view-start mark above it."""
    prompt: str = ""
    """The prompt's text after the turns."""
    notices: list[str] = field(default_factory=list)


async def _run(
    tmp_path: Path,
    *,
    idle: float = 4.0,
    quiet: bool = False,
    prompts: tuple[str, ...] = ("write x",),
) -> Drawn:
    drawn = Drawn()
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        app = Pane()
        async with app.run_test(size=(100, 40)) as pilot:
            chat = app.query_one(ChatView)
            for prompt in prompts:
                turn = _turn(store, tmp_path, idle=idle, quiet=quiet, prompt=prompt)
                renderer = TurnRenderer(chat, turn)
                async with aclosing(renderer.run()) as events:
                    async for event in events:
                        if isinstance(event, ReplyText | PaceChanged):
                            drawn.blinks.append(chat.prompt.cursor_blink)
                        if isinstance(event, ReplyText) and renderer.view is not None:
                            drawn.bars.append(not renderer.view.has_class("-streaming"))
                        if renderer.view is not None:
                            drawn.stats.append(str(renderer.view.query_one(".stats").render()))
            await pilot.pause()
            drawn.blinks.append(chat.prompt.cursor_blink)
            views = list(app.query(MessageView))
            drawn.messages = [(v.role, v.body.source) for v in views]
            if views:
                drawn.footer = str(views[-1].query_one(".stats").render())
            drawn.gauge = str(chat.prompt.border_subtitle)
            if views:
                drawn.bars.append(not views[-1].has_class("-streaming"))
            children = list(chat.transcript.children)
            drawn.marks = [
                views.index(children[i + 1])  # type: ignore[arg-type]
                for i, w in enumerate(children)
                if isinstance(w, ContextMark)
            ]
            drawn.prompt = chat.prompt.text
            drawn.notices = [n.message for n in app._notifications]
    return drawn


async def test_a_streamed_turn_is_drawn_whole_with_its_footer(tmp_path: Path) -> None:
    drawn = await _run(tmp_path)
    # The open fence joined the body at the end: the reply is its Markdown, as from history.
    assert drawn.messages == [("user", "write x"), ("assistant", "".join(REPLY))]
    assert drawn.footer.startswith("q4 · complete") and "drawn every" not in drawn.footer
    assert all(drawn.blinks)  # a core is idle: the cursor blinks throughout
    # No bar while it streams (the rows kept free under the text stay blank), then its bar.
    assert drawn.bars and not any(drawn.bars[:-1]) and drawn.bars[-1]


async def test_with_no_idle_core_the_cursor_holds_and_the_footer_says_so(tmp_path: Path) -> None:
    drawn = await _run(tmp_path, idle=0.0)
    assert "drawn every 0.5 s (no idle CPU core)" in drawn.footer
    # Held while the reply streamed, then released.
    assert not any(drawn.blinks[:-1]) and drawn.blinks[-1]


async def test_a_quiet_turn_counts_then_shows_the_whole_reply(tmp_path: Path) -> None:
    drawn = await _run(tmp_path, idle=0.0, quiet=True)
    assert drawn.stats[0].startswith("0 tokens after 0 s")  # laid out before the request
    assert drawn.messages[-1] == ("assistant", "".join(REPLY))
    assert "shown whole" in drawn.footer
    assert not any(drawn.blinks[:-1]) and drawn.blinks[-1]


async def test_the_gauge_shows_the_context_in_use(tmp_path: Path) -> None:
    drawn = await _run(tmp_path)
    assert drawn.gauge == "context 30 / 4,096 (1 %)"  # no usage: the request's 10 + 20 decoded
    assert drawn.marks == []


async def test_older_turns_left_out_are_marked_and_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.modules[__name__], "N_CTX", 400)
    old, new = " ".join(["old"] * 200), " ".join(["new"] * 100)
    drawn = await _run(tmp_path, prompts=(old, new))
    assert [role for role, _ in drawn.messages] == ["user", "assistant", "user", "assistant"]
    assert drawn.marks == [2]  # the model's view starts at the second prompt
    assert any("2 older message(s) left out" in n for n in drawn.notices)
    assert drawn.gauge.startswith("context ") and " / 400 (" in drawn.gauge


async def test_a_prompt_too_big_is_given_back_with_its_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.modules[__name__], "N_CTX", 400)
    big = " ".join(["w"] * 500)
    drawn = await _run(tmp_path, prompts=(big,))
    assert drawn.messages == []  # nothing stored or drawn
    assert drawn.prompt == big  # given back to shorten or split
    assert any("about 500 tokens" in n and "(400)" in n for n in drawn.notices)
