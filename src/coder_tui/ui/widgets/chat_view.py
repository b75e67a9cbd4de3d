"""The chat pane: a scrolling transcript of messages and the prompt under it. Renders only.

Also shows what the model sees (``core/chat/context.py`` decides it): a mark above the first
message of the model's view when older ones are left out of the request, and the context gauge
(tokens in use / the slot's context) in the prompt's frame, where it is always visible.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from coder_tui.core.store.history import stats_line
from coder_tui.core.store.schema import StoredMessage
from coder_tui.ui.widgets.message import MessageView
from coder_tui.ui.widgets.prompt import PromptInput
from coder_tui.ui.widgets.row_reserve import quiet_virtual_size


def reply_footer(msg: StoredMessage) -> str:
    """The line under a reply: the profile and quant that produced it and its numbers."""
    who = " · ".join(b for b in (msg.profile, msg.quant) if b) or "?"
    return f"{who} · {stats_line(msg)}"


def reply_who(msg: StoredMessage) -> str:
    """The name line of a reply: the model, and which of its answers it is when regenerated."""
    who = msg.model or msg.profile or "model"
    if msg.alternatives > 1:  # Ctrl+G, then ←/→, shows the others
        who += f" · answer {msg.alternative} of {msg.alternatives} (Ctrl+G ←/→)"
    return who


def context_gauge(used: int | None, n_ctx: int | None) -> str:
    """The gauge's text: tokens in use of the context, or what is not known yet."""
    if n_ctx is None:
        return "context: counted when the server answers" if used is None else f"context {used:,}"
    used = used or 0
    return f"context {used:,} / {n_ctx:,} ({min(999, round(100 * used / n_ctx))} %)"


VIEW_START = "▲ left out of the request (kept here) · the model's view starts below"


class ContextMark(Static):
    """The line above the first message the model sees, when older ones are left out."""

    DEFAULT_CSS = """
    ContextMark { color: $warning; text-style: italic; margin: 0 0 1 0; }
    """


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

    def show_context(self, used: int | None, n_ctx: int | None) -> None:
        """The context gauge, in the prompt's frame."""
        self.prompt.border_subtitle = context_gauge(used, n_ctx)

    async def mark_view_start(self, message_id: int | None) -> None:
        """Put the mark above the message ``message_id`` (``None``: the model sees everything)."""
        for mark in self.transcript.query(ContextMark):
            await mark.remove()
        if message_id is None:
            return
        for view in self.transcript.query(MessageView):
            if view.message_id == message_id:
                await self.transcript.mount(ContextMark(VIEW_START, markup=False), before=view)
                return

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

    async def start_reply(self, who: str, message_id: int | None = None) -> MessageView:
        view = MessageView("assistant", who=who, stats="generating…", message_id=message_id)
        view.add_class("-streaming")
        await self.transcript.mount(view)
        return view

    @staticmethod
    def _view(msg: StoredMessage) -> MessageView:
        if msg.role == "user":
            return MessageView("user", msg.content, who="you", message_id=msg.id)
        view = MessageView(
            "assistant",
            msg.content,
            who=reply_who(msg),
            stats=reply_footer(msg),
            message_id=msg.id,
        )
        if msg.status in ("interrupted", "error", "cancelled"):
            view.add_class(msg.status)
        return view
