"""The chat pane: a scrolling transcript of messages and the prompt under it. Renders only."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll

from coder_tui.core.store.history import stats_line
from coder_tui.core.store.schema import StoredMessage
from coder_tui.ui.widgets.message import MessageView
from coder_tui.ui.widgets.prompt import PromptInput
from coder_tui.ui.widgets.row_reserve import quiet_virtual_size


def reply_footer(msg: StoredMessage) -> str:
    """The line under a reply: the profile that produced it and its numbers."""
    who = msg.profile or "?"
    return f"{who} · {stats_line(msg)}"


class Transcript(VerticalScroll):
    """The scrolling list of messages, anchored to the bottom while the reader is there.

    A layout that changes its height already scrolls it (the anchor is applied while arranging)
    and a change of scrollbars asks for its own layout, so its ``virtual_size`` asks for none:
    that saves a second layout and a repaint of the whole transcript each time a reply grows.
    """

    virtual_size = quiet_virtual_size()


class ChatView(Vertical):
    """Transcript plus prompt. The screen feeds it messages; it posts ``PromptInput.Submitted``."""

    DEFAULT_CSS = """
    ChatView { height: 1fr; }
    ChatView > #transcript { height: 1fr; padding: 0 1; }
    ChatView > #empty { color: $text-muted; padding: 1 2; }
    """

    def compose(self) -> ComposeResult:
        yield Transcript(id="transcript")
        yield PromptInput(id="prompt")

    def on_mount(self) -> None:
        # Keep the newest text in view, but only while the reader is at the bottom.
        self.transcript.anchor()

    @property
    def transcript(self) -> Transcript:
        return self.query_one("#transcript", Transcript)

    @property
    def prompt(self) -> PromptInput:
        return self.query_one(PromptInput)

    async def show_conversation(self, messages: Iterable[StoredMessage]) -> None:
        await self.transcript.remove_children()
        views = [self._view(m) for m in messages if m.role != "system"]
        if views:
            await self.transcript.mount_all(views)
        self.transcript.scroll_end(animate=False)

    async def add(self, msg: StoredMessage) -> MessageView:
        view = self._view(msg)
        await self.transcript.mount(view)
        return view

    async def start_reply(self, who: str) -> MessageView:
        view = MessageView("assistant", who=who, stats="generating…")
        await self.transcript.mount(view)
        return view

    @staticmethod
    def _view(msg: StoredMessage) -> MessageView:
        if msg.role == "user":
            return MessageView("user", msg.content, who="you")
        view = MessageView(
            "assistant",
            msg.content,
            who=msg.model or msg.profile or "model",
            stats=reply_footer(msg),
        )
        if msg.status in ("interrupted", "error", "cancelled"):
            view.add_class(msg.status)
        return view
