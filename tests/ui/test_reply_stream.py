"""Streaming a reply: finished blocks go to the body, the open block is drawn apart, and the
finished reply is the same Markdown render as a reply loaded from history."""

from __future__ import annotations

import random

from textual.app import App, ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Markdown
from textual.widgets._markdown import MarkdownBlock, MarkdownFence

from coder_tui.ui.widgets.message import MessageView
from coder_tui.ui.widgets.reply_stream import (
    CHUNK_LINES,
    Fence,
    ReplyStream,
    StreamingFence,
    fence_opening,
)

CODE = "".join(f"    x{i} = compute({i})  # line {i}\n" for i in range(3 * CHUNK_LINES + 5))
REPLY = (
    "# Plan\n\nFirst a paragraph that\nwraps over lines.\n\n- one\n- two\n\n"
    f"```python\ndef f():\n{CODE}```\n\nThen ~~~ text.\n\n~~~~\nraw ``` inside\n~~~~\n\n"
    "> quoted\n\nLast words."
)


def test_fences() -> None:
    assert fence_opening("```python") == Fence("`", 3, "python")
    assert fence_opening("  ~~~~ js ") == Fence("~", 4, "js")
    assert fence_opening("``` a`b") is None  # an inline code span, not a fence
    assert fence_opening("    ```") is None  # indented code
    fence = Fence("`", 3, "py")
    assert fence.closes("```") and fence.closes("  ````  ")
    assert not fence.closes("~~~") and not fence.closes("``") and not fence.closes("``` x")
    assert not Fence("~", 4, "").closes("~~~")


class Host(App[None]):
    def compose(self) -> ComposeResult:
        with VerticalScroll(id="transcript"):
            yield MessageView("assistant", who="model")


def _blocks(md: Markdown) -> list[tuple[str, str]]:
    out = []
    for block in md.query(MarkdownBlock):
        text = block.code if isinstance(block, MarkdownFence) else str(block._content)
        out.append((type(block).__name__, text))
    return out


async def _stream(chunks: list[str]) -> tuple[list[tuple[str, str]], list[int]]:
    app = Host()
    seen_fence_chunks: list[int] = []
    async with app.run_test(size=(100, 40)) as pilot:
        view = app.query_one(MessageView)
        reply = ReplyStream(view)
        written = ""
        for chunk in chunks:
            await reply.write(chunk)
            written += chunk
            fences = list(view.query(StreamingFence))
            if not fences:  # prose is in the body at once, but a line that may open a fence
                assert written.startswith(view.body.source)
                assert "\n" not in written[len(view.body.source) :]
            assert len(fences) <= 1
            if fences:
                seen_fence_chunks.append(len(fences[0].children))
                # the open fence is not highlighted in full per update
                assert not view.body.query(MarkdownFence) or "def f" not in "".join(
                    f.code for f in view.body.query(MarkdownFence)
                )
        await reply.close()
        await pilot.pause()
        assert view.body.source == "".join(chunks)
        assert not view.query(StreamingFence)
        assert view.styles.min_height is None
        streamed = _blocks(view.body)
        reference = Markdown("".join(chunks))
        await view.mount(reference)
        await pilot.pause()
        assert streamed == _blocks(reference)
    return streamed, seen_fence_chunks


async def test_streamed_reply_renders_like_history() -> None:
    rng = random.Random(7)
    chunks, rest = [], REPLY
    while rest:
        n = rng.randint(1, 40)
        chunks.append(rest[:n])
        rest = rest[n:]
    streamed, fence_chunks = await _stream(chunks)
    kinds = [kind for kind, _ in streamed]
    assert kinds.count("MarkdownFence") == 2 and "MarkdownH1" in kinds
    assert max(fence_chunks) >= 3  # the long fence was drawn in chunks while it streamed


async def test_one_character_at_a_time() -> None:
    text = "a\n\n```\ncode\n```\nb `x`\n\n1. one\n2. two"
    await _stream(list(text))


async def test_reply_ending_inside_a_fence() -> None:
    streamed, _ = await _stream(["Here:\n\n```py\n", "x = 1\n", "y = 2"])
    assert streamed[-1] == ("MarkdownFence", "x = 1\ny = 2")
