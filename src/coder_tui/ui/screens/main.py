"""The main screen: server bar, the coding chat, and live tiles and the server log beside it.

Owns the chat flow: save the prompt before sending, stream the reply through the client into the
transcript (coalesced), save it as it streams (about once a second) and when it ends. While no CPU
core is idle (``core/cpu_pace.py``) the reply is read and drawn only every ``busy_refresh_s``; when
the previous reply of the same profile and model was fast with no idle core, the reply is asked for
whole instead, with a token count meanwhile (``core/decode_memory.py``, ``core/quiet_reply.py``).
The App owns the services (server, history store) and sets this screen's server attributes; the
screen never starts or stops the server itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer

from coder_tui.core.chat.client import ChatClient, DecodeProgress, Delta, StreamEnd
from coder_tui.core.chat.coalesce import Coalescer
from coder_tui.core.chat.code_blocks import last_code_block
from coder_tui.core.chat.pacing import BusyPace
from coder_tui.core.chat.quiet_reply import QuietReply, slot_progress
from coder_tui.core.chat.reply_mode import DecodeRun, quiet_next
from coder_tui.core.chat.stream import ReplyEvents
from coder_tui.core.config.loader import ChatSettings, Profile
from coder_tui.core.metrics.types import MetricsSnapshot
from coder_tui.core.server.restart import interrupted_notice, reply_end_notice
from coder_tui.core.store.history import HistoryStore, HistoryWriteError
from coder_tui.core.store.schema import Conversation, status_for_end
from coder_tui.ui.widgets.chat_view import ChatView, reply_footer
from coder_tui.ui.widgets.dashboard import Dashboard, MetricsStrip
from coder_tui.ui.widgets.message import MessageView
from coder_tui.ui.widgets.prompt import PromptInput
from coder_tui.ui.widgets.reply_stream import ReplyStream
from coder_tui.ui.widgets.server_bar import ServerBar
from coder_tui.ui.widgets.server_log import ServerLog

MIN_RECORD_TOKENS = 16
"""A reply shorter than this says too little about the decode speed to steer the next one."""


def quiet_progress(event: DecodeProgress) -> str:
    """The stats line of a quiet reply while it is generated."""
    return (
        f"{event.n_decoded} tokens after {event.t_s:.0f} s · the text comes whole at the end: "
        "no CPU core is idle, and streaming would cost the model a wake per token"
    )


SAVE_EVERY_S = 1.0


class MainScreen(Screen[None]):
    """Server state on top, chat on the left, server log on the right (hidden when narrow)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+b", "copy_code", "Copy code"),
        Binding("ctrl+l", "conversations", "Chats"),
        Binding("ctrl+r", "retry", "Retry", show=False),
        Binding("ctrl+n", "new_conversation", "New chat", show=False),
    ]

    def __init__(self, store: HistoryStore, chat: ChatSettings, api_key: str | None = None) -> None:
        super().__init__()
        self.store = store
        self.chat_settings = chat
        self.api_key = api_key
        self.local_api_key = api_key
        """The key for this machine's server (``api_key`` changes while chatting with a remote)."""
        self.server_url = ""
        self.server_ready = False
        self.profile: Profile | None = None
        self.conversation: Conversation | None = None
        self._stream: Any = None
        self._quiet_view: MessageView | None = None
        """The message of the quiet reply being generated (its token count is shown there)."""
        self._shown_progress: DecodeProgress | None = None
        """The count ``offer_progress`` has shown already (the stream yields the same object)."""
        self._busy = False
        self.request_extra: dict[str, Any] = {}
        """Extra request fields for every reply (tests use ``ignore_eos`` for long replies)."""
        self.pace = BusyPace(chat.busy_refresh_s)
        self.reply_paced = False
        """The reply being streamed was slowed at least once (its footer says so)."""
        self._reply_busy = False
        self._shown = True
        self.cpu_saturated = False
        """No CPU core is idle (set by the app from the host samples): the cursor stops blinking."""

    def compose(self) -> ComposeResult:
        yield ServerBar(id="server-bar")
        yield MetricsStrip(id="strip")
        with Horizontal(id="body"):
            yield ChatView(id="chat")
            with Vertical(id="side"):
                yield Dashboard(compact=True, id="tiles")
                yield ServerLog(id="server-log")
        yield Footer(compact=True)

    def show_metrics(self, snap: MetricsSnapshot) -> None:
        """Update the tiles (wide) or the strip (narrow); the hidden one is left alone."""
        try:
            wide = self.query_one("#side").display
            target: Dashboard | MetricsStrip = (
                self.query_one(Dashboard) if wide else self.query_one(MetricsStrip)
            )
        except NoMatches:  # a snapshot that arrives while the app closes and the screen empties
            return
        target.show(snap)

    def offer_progress(self, snap: MetricsSnapshot) -> None:
        """Hand the sampler's ``/slots`` read to a quiet reply, so it asks nothing itself (called
        for every snapshot, whichever screen shows)."""
        server = snap.server
        if isinstance(self._stream, QuietReply) and server is not None and server.slots_available:
            event = self._stream.offer(slot_progress(server.slots))
            if event is not None and self._quiet_view is not None:
                # Shown now, in the same screen update as the tiles: a second update when the
                # stream yields it a moment later cost the chat about half its CPU per tick.
                self._quiet_view.set_stats(quiet_progress(event))
                self._shown_progress = event

    async def on_mount(self) -> None:
        self.query_one(PromptInput).focus()
        interrupted = self.store.mark_interrupted()
        self.conversation = self.store.last_conversation()
        if self.conversation is not None:
            await self.query_one(ChatView).show_conversation(
                self.store.messages(self.conversation.id)
            )
        notice = interrupted_notice(interrupted)
        if notice:
            self.notify(notice, timeout=8)

    # -- chat ----------------------------------------------------------------------------------
    @property
    def generating(self) -> bool:
        """A reply is on its way (from the moment it is asked for until it is saved)."""
        return self._busy

    async def on_prompt_input_submitted(self, message: PromptInput.Submitted) -> None:
        if self.generating:
            self.notify("a reply is still streaming: Esc cancels it", severity="warning")
            message.prompt_input.load_text(message.text)
            return
        if not self.server_ready:
            self.notify("the server is not ready yet", severity="warning")
            message.prompt_input.load_text(message.text)
            return
        if self.conversation is None:
            self.conversation = self.store.new_conversation(system_prompt=self._system_prompt())
        profile = self.profile.name if self.profile else None
        stored = self.store.add_user_message(self.conversation.id, message.text, profile)
        await self.query_one(ChatView).add(stored)
        self._busy = True
        self._reply(self.conversation.id)

    def _system_prompt(self) -> str | None:
        if self.profile is not None and self.profile.system_prompt:
            return self.profile.system_prompt
        return self.chat_settings.system_prompt

    def _history(self, conv_id: int) -> list[dict[str, str]]:
        """Messages for the request: system prompt, then the stored turns up to the last prompt."""
        conv = self.store.conversation(conv_id)
        out: list[dict[str, str]] = []
        if conv is not None and conv.system_prompt:
            out.append({"role": "system", "content": conv.system_prompt})
        msgs = self.store.messages(conv_id)
        last_user = max((i for i, m in enumerate(msgs) if m.role == "user"), default=-1)
        for msg in msgs[: last_user + 1]:
            if msg.role == "assistant" and not msg.content:
                continue
            out.append({"role": msg.role, "content": msg.content})
        return out

    @work(exclusive=True, group="chat", exit_on_error=False)
    async def _reply(self, conv_id: int) -> None:
        self._busy = True
        try:
            await self._stream_reply(conv_id)
        finally:
            self._busy = False

    async def _screen_settled(self) -> None:
        """Returns once the screen has been painted with what the reply just mounted: the request
        goes out after that paint, so the paint does not take a core from the model's first decode
        steps (when every core decodes, that stalls all of its threads)."""
        settled = asyncio.Event()
        self.call_after_refresh(settled.set)
        await settled.wait()

    async def _stream_reply(self, conv_id: int) -> None:
        chat = self.query_one(ChatView)
        profile = self.profile.name if self.profile else None
        model = self.profile.model.name if self.profile else None
        view = await chat.start_reply(model or profile or "model")
        msg_id = self.store.begin_reply(conv_id, profile, model)
        messages = self._history(conv_id)
        # Deltas are coalesced (about 10 updates a second, a timer shows late text) and rendered
        # by ReplyStream: finished blocks go to the body once, the open block is drawn apart.
        reply = ReplyStream(view)
        coalescer = Coalescer(reply.write)
        parts: list[str] = []
        end: StreamEnd | None = None
        last_save = time.monotonic()
        settings = self.chat_settings
        decode_as = profile or self.server_url  # an attached server is told apart by its address
        last = self.store.last_decode(decode_as, model)
        quiet = quiet_next(last, settings.quiet_above_tps, self.server_url)
        async with ChatClient(
            self.server_url, self.api_key, stall_timeout_s=settings.stall_timeout_s
        ) as client:
            ask = client.quiet_chat if quiet else client.stream_chat
            stream = ask(
                messages,
                max_tokens=settings.max_tokens,
                temperature=settings.temperature,
                extra=self.request_extra or None,
            )
            self._stream = stream
            self.pace.restart_window()
            self.reply_paced = paced = False
            saturated = False
            if quiet:  # its row is laid out with the reply, so each count repaints it in place
                view.set_stats(quiet_progress(DecodeProgress(0, 0.0)))
                self._quiet_view = view
                # Asked whole because the last reply left no core idle: no blink from the start.
                self._reply_busy = True
                self.sync_cursor_blink()
            try:
                await self._screen_settled()
                async for event in stream:
                    if isinstance(event, DecodeProgress):
                        if event is not self._shown_progress:  # not shown by offer_progress
                            view.set_stats(quiet_progress(event))
                    elif isinstance(event, Delta):
                        if not quiet and (self.pace.check() or not paced):
                            # From the first token on (time to first token is read unpaced).
                            paced = True
                            self._apply_pace(coalescer, stream)
                            saturated = saturated or self.pace.saturated
                        if event.reasoning:
                            continue
                        parts.append(event.text)
                        await coalescer.add(event.text)
                        if time.monotonic() - last_save >= SAVE_EVERY_S:
                            self.store.update_reply(msg_id, "".join(parts))
                            last_save = time.monotonic()
                    elif isinstance(event, StreamEnd):
                        end = event
                if quiet:  # idle cores over the whole reply, measured once at its end
                    self.pace.check()
                    saturated = self.pace.saturated
            except BaseException:
                # Cancelled from outside (the app is closing): keep what arrived.
                self.store.finish_reply(msg_id, "".join(parts), "interrupted")
                raise
            finally:
                self._stream = None
                self._quiet_view = self._shown_progress = None
                self._reply_busy = False
                self.sync_cursor_blink()
                await coalescer.close()
                await reply.close()
        assert end is not None
        timings, usage = end.timings, end.usage
        status = status_for_end(end.status)
        self.store.finish_reply(
            msg_id,
            end.text,
            status,
            prompt_tokens=timings.prompt_n if timings else (usage.prompt_tokens if usage else None),
            completion_tokens=timings.predicted_n
            if timings
            else (usage.completion_tokens if usage else None),
            ttft_s=end.ttft_s,
            prompt_per_second=timings.prompt_per_second if timings else None,
            predicted_per_second=timings.predicted_per_second if timings else None,
            finish_reason=end.finish_reason,
            error=end.message or None if status != "complete" else None,
        )
        if (
            status == "complete"
            and timings is not None
            and timings.predicted_n >= MIN_RECORD_TOKENS
        ):
            run = DecodeRun(timings.predicted_per_second, saturated, quiet)
            with contextlib.suppress(HistoryWriteError):  # a hint for the next reply, no more
                self.store.record_decode(decode_as, model, run)
        stored = self.store.message(msg_id)
        if stored is not None:
            footer = reply_footer(stored)
            if quiet:
                footer += " · asked whole (no idle CPU core at the last reply's speed)"
            elif self.reply_paced:
                footer += f" · drawn every {self.pace.busy_interval_s:g} s (no idle CPU core)"
            view.set_stats(footer, status)
        if end.status == "cancelled" and end.server_still_generating:
            self.notify("cancelled, but the server is still generating", severity="warning")
        notice = reply_end_notice(end)
        if notice:
            self.notify(notice, severity="error", timeout=12)

    def _apply_pace(self, coalescer: Coalescer, stream: ReplyEvents) -> None:
        """Screen updates and stream reads at the pace's interval; no cursor blink while busy."""
        busy = self.pace.saturated
        coalescer.interval_s = self.pace.interval_s
        stream.read_gap_s = self.pace.interval_s if busy else 0.0
        self._reply_busy = busy
        self.sync_cursor_blink()
        self.reply_paced = self.reply_paced or busy

    def sync_cursor_blink(self) -> None:
        """The prompt's cursor blinks only where it can be seen and costs nothing that matters:
        not under another screen (its timer ran on there) and not while no CPU core is idle."""
        on = self._shown and not self._reply_busy and not self.cpu_saturated
        with contextlib.suppress(NoMatches):  # the screen is closing
            prompt = self.query_one(PromptInput)
            if prompt.cursor_blink != on:
                prompt.cursor_blink = on

    def on_screen_suspend(self) -> None:
        self._shown = False
        self.sync_cursor_blink()

    def on_screen_resume(self) -> None:
        self._shown = True
        self.sync_cursor_blink()

    def last_prompt(self) -> str:
        """The newest prompt of the open conversation (compare mode starts from it)."""
        if self.conversation is None:
            return ""
        prompts = [m for m in self.store.messages(self.conversation.id) if m.role == "user"]
        return prompts[-1].content if prompts else ""

    # -- actions -------------------------------------------------------------------------------
    def action_cancel(self) -> None:
        if self._stream is not None:
            self._stream.cancel()

    def action_retry(self) -> None:
        if self.generating or self.conversation is None:
            return
        if not any(m.role == "user" for m in self.store.messages(self.conversation.id)):
            return
        self._busy = True
        self._reply(self.conversation.id)

    def action_copy_code(self) -> None:
        if self.conversation is None:
            return
        replies = [m for m in self.store.messages(self.conversation.id) if m.role == "assistant"]
        code = last_code_block(replies[-1].content) if replies else None
        if code is None:
            self.notify("no code block in the last reply")
            return
        self.app.copy_to_clipboard(code)
        self.notify(f"copied {len(code.splitlines())} line(s) of code")

    async def action_new_conversation(self) -> None:
        if self.generating:
            return
        self.conversation = None
        await self.query_one(ChatView).show_conversation([])
        self.query_one(PromptInput).focus()

    def action_conversations(self) -> None:
        if self.generating:
            return
        from coder_tui.ui.screens.conversations import ConversationsScreen

        current = self.conversation.id if self.conversation else None
        self.app.push_screen(ConversationsScreen(self.store, current), self._switch_to)

    async def _switch_to(self, conv_id: int | None) -> None:
        if conv_id is None:
            return
        self.conversation = self.store.conversation(conv_id)
        messages = self.store.messages(conv_id) if self.conversation else []
        await self.query_one(ChatView).show_conversation(messages)
        self.query_one(PromptInput).focus()
