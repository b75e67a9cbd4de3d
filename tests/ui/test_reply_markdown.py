"""A message's Markdown body: paragraphs that hold rows while they stream, the last block marked,
and the layouts a streaming update costs (none while the text fits its held rows, one when not)."""

from __future__ import annotations

from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.screen import Screen
from textual.widgets import Markdown
from textual.widgets._markdown import MarkdownParagraph

from coder_tui.ui.widgets.chat_view import Transcript
from coder_tui.ui.widgets.message import MessageView
from coder_tui.ui.widgets.reply_markdown import LAST_BLOCK, ReplyMarkdown, StreamParagraph
from coder_tui.ui.widgets.row_reserve import GrowingStatic


def test_paragraph_class_is_textuals() -> None:
    # reply_markdown imports MarkdownParagraph from textual.widgets._markdown: still the one?
    assert Markdown.BLOCKS["paragraph_open"] is MarkdownParagraph
    assert ReplyMarkdown.BLOCKS["paragraph_open"] is StreamParagraph
    # GrowingStatic's methods win (no Markdown class defines them) ...
    assert StreamParagraph.update is GrowingStatic.update
    assert StreamParagraph.get_content_height is GrowingStatic.get_content_height
    # ... while the stylesheet and queries still see a MarkdownParagraph.
    assert "MarkdownParagraph" in StreamParagraph._css_type_names


class Host(App[None]):
    def compose(self) -> ComposeResult:
        with Transcript(id="transcript"):
            yield MessageView("assistant", "One.\n\nTwo.", who="model", stats="stats")


@pytest.fixture
def layouts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the screen's layouts (appends one per layout)."""
    seen: list[int] = []
    original = Screen._refresh_layout

    def counting(self: Screen[Any], *args: Any, **kwargs: Any) -> None:
        seen.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(Screen, "_refresh_layout", counting)
    return seen


async def test_history_body_marks_its_last_paragraph() -> None:
    app = Host()
    async with app.run_test(size=(60, 20)) as pilot:
        await pilot.pause()
        body = app.query_one(MessageView).body
        first, last = body.query(MarkdownParagraph)
        assert not first.has_class(LAST_BLOCK) and last.has_class(LAST_BLOCK)
        assert first.styles.margin.bottom == 1 and last.styles.margin.bottom == 0
        assert body.outer_size.height == 3  # no empty row under the last paragraph


async def test_held_rows_spare_layouts(layouts: list[int]) -> None:
    app = Host()
    async with app.run_test(size=(60, 20)) as pilot:
        await pilot.pause()
        body = app.query_one(MessageView).body
        paragraph = body.query(StreamParagraph).last()
        paragraph.hold = 4
        paragraph.refresh(layout=True)
        await pilot.pause()
        assert paragraph.outer_size.height == 1 + 4
        layouts.clear()
        for word in ["three", "four", "five"]:  # still one line: a repaint each, no layout
            await body.append(f" {word}")
            await pilot.pause()
        assert not layouts
        assert "five" in str(paragraph.render())
        await body.append(" long" * 60)  # more lines than held: one layout, not two
        await pilot.pause()
        assert len(layouts) == 1
        held = paragraph.outer_size.height
        paragraph.release()
        await pilot.pause()
        assert held == paragraph.outer_size.height + 4 and held > 5
