"""One chat turn on screen: the events of ``core/chat/session.py`` rendered into the chat pane.

Owns ``TurnRenderer``: the prompt's message, the reply's message, its text (coalesced into about
ten updates a second, or one every ``busy_refresh_s`` while no CPU core is idle, and drawn by
``ReplyStream``), a quiet reply's token count, the line under the finished reply and a notice
when it ended badly, what of the conversation the model sees (the mark where its view starts, the
context gauge, a prompt too big for the context given back with its size), and the prompt's
cursor held still while the reply leaves no core idle. What the turn does (request, pacing, saving) is
the session's; the screen runs the renderer in its chat worker and keeps the conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from contextlib import aclosing

from textual.css.query import NoMatches

from coder_tui.core.chat.coalesce import Coalescer
from coder_tui.core.chat.events import DecodeProgress, reply_end_notice
from coder_tui.core.chat.session import ChatTurn
from coder_tui.core.chat.turn_events import (
    ContextFitted,
    PaceChanged,
    PromptRefused,
    PromptSaved,
    ReplyStarted,
    ReplyText,
    TurnEnded,
    TurnEvent,
)
from coder_tui.ui.widgets.chat_view import ChatView, reply_footer
from coder_tui.ui.widgets.message import MessageView
from coder_tui.ui.widgets.reply_stream import ReplyStream


def quiet_progress(event: DecodeProgress) -> str:
    """The stats line of a quiet reply while it is generated."""
    return (
        f"{event.n_decoded} tokens after {event.t_s:.0f} s · the text comes whole at the end: "
        "no CPU core is idle, and drawing each token would take one from the model"
    )


def ended_footer(event: TurnEnded) -> str | None:
    """The line under a finished reply: who, its numbers, and how it was asked for and drawn."""
    if event.message is None:
        return None
    footer = reply_footer(event.message)
    if event.quiet:
        footer += " · shown whole (no idle CPU core at the last reply's speed)"
    elif event.paced:
        footer += f" · drawn every {event.busy_interval_s:g} s (no idle CPU core)"
    return footer


class TurnRenderer:
    """Shows one turn's events in a ``ChatView``: iterate ``run()``, which draws each event
    before handing it on (what arrived stays on screen when the turn stops early)."""

    def __init__(self, chat: ChatView, turn: ChatTurn) -> None:
        self.chat = chat
        self.turn = turn
        self.view: MessageView | None = None
        """The reply's message, once the reply has started."""
        self.reply: ReplyStream | None = None
        self.coalescer: Coalescer | None = None
        """Batches the reply's text into a few ``reply`` writes a second."""

    async def run(self) -> AsyncGenerator[TurnEvent, None]:
        """The turn's events, each drawn before it is yielded."""
        try:
            async with aclosing(self.turn.events()) as events:
                async for event in events:
                    await self.show(event)
                    yield event
        finally:
            await self.close()

    async def show(self, event: TurnEvent) -> None:
        if isinstance(event, ReplyText):
            if self.coalescer is not None:
                await self.coalescer.add(event.text)
        elif isinstance(event, PaceChanged):
            self.chat.prompt.hold_blink("reply", event.cpu_saturated)
            if self.coalescer is not None:
                self.coalescer.interval_s = event.interval_s
        elif isinstance(event, DecodeProgress):
            self.show_progress(event)
        elif isinstance(event, PromptSaved):
            await self.chat.add(event.message)
        elif isinstance(event, ContextFitted):
            await self._show_context(event)
        elif isinstance(event, PromptRefused):
            self.chat.notify(event.refusal.notice, severity="error", timeout=12)
            if event.prompt is not None and not self.chat.prompt.text:
                self.chat.prompt.load_text(event.prompt)  # given back, to shorten or split
        elif isinstance(event, ReplyStarted):
            await self._start(event)
        elif isinstance(event, TurnEnded):
            await self.close()
            footer = ended_footer(event)
            if footer is not None and self.view is not None:
                self.view.set_stats(footer, event.status)
            if event.context_tokens is not None:
                self.chat.show_context(event.context_tokens, event.n_ctx)
            self._notify_end(event)

    async def _show_context(self, event: ContextFitted) -> None:
        """The gauge before the reply, the mark where the model's view starts, and one line
        when older turns were left out of the request."""
        plan = event.plan
        self.chat.show_context(plan.tokens, plan.n_ctx)
        await self.chat.mark_view_start(plan.first_kept_id)
        if plan.notice:
            self.chat.notify(plan.notice, timeout=8)

    def _notify_end(self, event: TurnEnded) -> None:
        """Say how a reply ended when it did not end well (a cancel the server ignored too)."""
        end = event.end
        if end.status == "cancelled" and end.server_still_generating:
            self.chat.notify("cancelled, but the server is still generating", severity="warning")
        notice = reply_end_notice(end)
        if notice:
            self.chat.notify(notice, severity="error", timeout=12)

    def show_progress(self, event: DecodeProgress) -> None:
        """A quiet reply's token count (its line was laid out at the start: repainted in place)."""
        if self.view is not None:
            self.view.set_stats(quiet_progress(event))

    async def _start(self, event: ReplyStarted) -> None:
        if event.quiet:  # shown whole because the last reply left no core idle: no blink
            self.chat.prompt.hold_blink("reply")
        self.view = view = await self.chat.start_reply(event.who, event.message_id)
        # Deltas are coalesced (about 10 updates a second, a timer shows late text) and rendered
        # by ReplyStream: finished blocks go to the body once, the open block is drawn apart.
        self.reply = ReplyStream(view)
        self.coalescer = Coalescer(self.reply.write)
        if event.quiet:  # its row is laid out with the reply, so each count repaints it in place
            self.show_progress(DecodeProgress(0, 0.0))
        await self._settled()

    async def _settled(self) -> None:
        """Returns once the screen has been painted with what the reply just mounted: the request
        goes out after that paint, so the paint does not take a core from the model's first decode
        steps (when every core decodes, that stalls all of its threads)."""
        settled = asyncio.Event()
        self.chat.call_after_refresh(settled.set)
        await settled.wait()

    async def close(self) -> None:
        """Draw what is left of the reply; the fence view goes, the text joins the body."""
        with contextlib.suppress(NoMatches):  # the screen is closing
            self.chat.prompt.hold_blink("reply", False)
        coalescer, self.coalescer = self.coalescer, None
        reply, self.reply = self.reply, None
        if coalescer is not None:
            await coalescer.close()
        if reply is not None:
            await reply.close()
        if self.view is not None:
            self.view.remove_class("-streaming")
