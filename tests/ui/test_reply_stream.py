"""Streaming a reply: finished blocks go to the body, the open block is drawn apart, and the
finished reply is the same Markdown render as a reply loaded from history."""

from __future__ import annotations

import random

from textual.app import App, ComposeResult
from textual.containers import VerticalScroll
from textual.geometry import Region
from textual.widgets import Markdown, Static
from textual.widgets._markdown import MarkdownBlock, MarkdownFence

from coder_tui.ui.widgets.chat_view import Transcript
from coder_tui.ui.widgets.message import MessageView
from coder_tui.ui.widgets.reply_stream import ReplyStream
from coder_tui.ui.widgets.streaming_fence import (
    CHUNK_LINES,
    CodeLines,
    Fence,
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


def _blocks(md: Markdown) -> list[tuple[str, str, int]]:
    """Each block's kind, text and height (held rows given back show as a height)."""
    out = []
    for block in md.query(MarkdownBlock):
        text = block.code if isinstance(block, MarkdownFence) else str(block._content)
        out.append((type(block).__name__, text, block.outer_size.height))
    return out


async def _stream(chunks: list[str]) -> tuple[list[tuple[str, str, int]], list[int]]:
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
                # the fence shows all its code so far: highlighted chunks, then the open lines
                shown = [str(c.render()) for c in fences[0].query_children(Static)]
                shown += fences[0].open_lines.lines
                assert "\n".join(shown) in written
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
        reference = MessageView("assistant", "".join(chunks), who="model")  # as from history
        await app.query_one("#transcript").mount(reference)
        await pilot.pause()
        assert streamed == _blocks(reference.body)
        assert view.outer_size == reference.outer_size
    return streamed, seen_fence_chunks


async def test_streamed_reply_renders_like_history() -> None:
    rng = random.Random(7)
    chunks, rest = [], REPLY
    while rest:
        n = rng.randint(1, 40)
        chunks.append(rest[:n])
        rest = rest[n:]
    streamed, fence_chunks = await _stream(chunks)
    kinds = [kind for kind, _, _ in streamed]
    assert kinds.count("MarkdownFence") == 2 and "MarkdownH1" in kinds
    assert max(fence_chunks) >= 3  # the long fence was drawn in chunks while it streamed


async def test_one_character_at_a_time() -> None:
    text = "a\n\n```\ncode\n```\nb `x`\n\n1. one\n2. two"
    await _stream(list(text))


class LinesHost(App[None]):
    def compose(self) -> ComposeResult:
        yield CodeLines(hold=4)


async def test_code_lines_repaint_only_what_changed() -> None:
    app = LinesHost()
    async with app.run_test(size=(40, 12)) as pilot:
        lines = app.query_one(CodeLines)
        lines.set_lines(["a = 1", "b = 2", "c"])
        await pilot.pause()
        assert lines.size.height == 3 + 4  # held rows under the text
        dirty: list[object] = []
        refresh = lines.refresh

        def spy(*regions: object, **kwargs: object) -> object:
            dirty.append((regions, kwargs))
            return refresh(*regions, **kwargs)  # type: ignore[arg-type]

        lines.refresh = spy  # type: ignore[method-assign]
        lines.set_lines(["a = 1", "b = 2", "c = 3", "d\tx"])
        assert dirty == [((Region(0, 2, 40, 2),), {})]  # rows 2 and 3 only, no layout
        await pilot.pause()
        assert lines.lines[-1] == "d       x"
        assert lines.size.height == 3 + 4
        lines.set_lines([f"line {i}" for i in range(9)])  # outgrows the held rows
        assert dirty[-1] == ((), {"layout": True})
        await pilot.pause()
        assert lines.size.height == 9 + 4
        assert app.screen.get_widget_at(0, 8)[0] is lines


async def test_reply_ending_inside_a_fence() -> None:
    streamed, _ = await _stream(["Here:\n\n```py\n", "x = 1\n", "y = 2"])
    assert streamed[-1][:2] == ("MarkdownFence", "x = 1\ny = 2")


class ChatHost(App[None]):
    def compose(self) -> ComposeResult:
        with Transcript(id="transcript"):
            for i in range(6):
                yield MessageView("user", f"question {i}\n\n" + "words " * 40, who="you")
            yield MessageView("assistant", who="model")

    def on_mount(self) -> None:
        self.query_one(Transcript).anchor()


async def test_follows_the_reply_only_while_the_reader_is_at_the_bottom() -> None:
    app = ChatHost()
    async with app.run_test(size=(80, 24)) as pilot:
        transcript = app.query_one(Transcript)
        reply = ReplyStream(app.query(MessageView).last())
        prose = "".join(f"word{i} " + ("\n\n" if i % 30 == 29 else "") for i in range(400))
        code = "```py\n" + "".join(f"x{i} = {i}\n" for i in range(60))
        parts = [prose[i : i + 50] for i in range(0, len(prose), 50)]
        parts += [code[i : i + 40] for i in range(0, len(code), 40)]
        for part in parts[:20]:
            await reply.write(part)
            await pilot.pause()
            assert transcript.scroll_y == transcript.max_scroll_y  # anchored: follows
        transcript.scroll_to(y=0, animate=False)  # the reader scrolls up
        await pilot.pause()
        for part in parts[20:]:
            await reply.write(part)
            await pilot.pause()
            assert transcript.scroll_y == 0  # left where the reader is
        transcript.scroll_end(animate=False)
        await pilot.pause()
        await reply.close()
        await pilot.pause()
        assert transcript.scroll_y == transcript.max_scroll_y  # back at the bottom: follows


async def test_a_long_reply_stops_growing_the_body_and_ends_folded() -> None:
    """Past ``LONG_LINES`` the newest lines go to a tail whose size is the screen's, and the
    finished reply is drawn from its folded text: the cost stays what is on screen."""
    from coder_tui.core.chat.fold import fold_reply
    from coder_tui.ui.widgets.reply_stream import LONG_LINES
    from coder_tui.ui.widgets.reply_tail import ReplyTail

    lines = [f"line {i}\n" for i in range(5 * LONG_LINES)]
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(MessageView)
        stream = ReplyStream(view)
        for i in range(0, len(lines), 50):
            await stream.write("".join(lines[i : i + 50]))
            await pilot.pause()
        tail = app.query_one(ReplyTail)
        assert tail.count == len(lines)
        assert tail.shown[-2:] == (f"line {len(lines) - 1}", "")  # the newest, drawn
        assert len(tail.shown) <= 24
        assert stream.body.source.count("\n") <= LONG_LINES + 50  # the body stopped growing
        await stream.close()
        await pilot.pause()
        assert not app.query(ReplyTail)
        assert stream.body.source == fold_reply("".join(lines)).text
        assert "lines folded" in stream.body.source
