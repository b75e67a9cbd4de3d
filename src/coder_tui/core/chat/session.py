"""One chat turn, end to end and headless: the prompt saved, the reply asked for, paced, saved.

Owns ``ChatTurn``: saving the prompt (a new conversation first when there is none), the request's
messages (the conversation's system prompt, then its turns up to the last prompt), the choice of a
quiet reply (asked whole, ``core/chat/quiet_reply.py``) or a streamed one
(``core/chat/reply_mode.py`` decides, from how the previous reply of the same profile and model
decoded), pacing a streamed reply while no CPU core is idle (``core/chat/pacing.py``: the reply
is then read from the socket every ``busy_refresh_s``, and the caller told to draw as seldom),
saving the reply as it arrives (about once a second), finishing it with its numbers, recording how
it decoded for the next turn's choice, and cancelling.

``ChatTurn.events()`` is an async generator of ``TurnEvent`` values (frozen dataclasses) that a UI
only renders: ``PromptSaved``, ``ReplyStarted``, then ``PaceChanged``, ``ReplyText`` and
``DecodeProgress`` (a quiet reply's token count) in any order, and one ``TurnEnded``. The request
goes out when the caller asks for the event after ``ReplyStarted``, so a UI can draw the reply's
place first. Coalescing the text into a few screen updates a second is the renderer's
(``core/chat/coalesce.py``, at ``PaceChanged.interval_s``); the server's lifecycle, the App's.
Knows nothing of Textual: ``tests/core/test_chat_session.py`` runs a whole turn with Textual not
importable.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import httpx

from coder_tui.core.chat.client import ChatClient
from coder_tui.core.chat.connection import ReplyEvents
from coder_tui.core.chat.events import DecodeProgress, Delta, StreamEnd
from coder_tui.core.chat.pacing import BusyPace
from coder_tui.core.chat.quiet_reply import QuietReply, slot_progress
from coder_tui.core.chat.reply_mode import quiet_next
from coder_tui.core.config.schema import ChatSettings, Profile
from coder_tui.core.metrics.types import SlotSample
from coder_tui.core.store.history import HistoryStore, HistoryWriteError
from coder_tui.core.store.schema import (
    Conversation,
    DecodeRun,
    MessageStatus,
    StoredMessage,
    status_for_end,
)

MIN_RECORD_TOKENS = 16
"""A reply shorter than this says too little about the decode speed to steer the next one."""
SAVE_EVERY_S = 1.0
"""How often a streaming reply's text so far is saved (a crash loses at most this much)."""


@dataclass(frozen=True)
class PromptSaved:
    """The prompt is stored, in ``conversation`` (new when the turn began without one)."""

    conversation: Conversation
    message: StoredMessage


@dataclass(frozen=True)
class ReplyStarted:
    """The reply's row is stored (status ``streaming``); the request goes out at the next event.

    ``who``: the name to show (the model, else the profile); ``quiet``: the reply is asked whole,
    so no text comes until the end, only ``DecodeProgress`` counts."""

    message_id: int
    who: str
    quiet: bool


@dataclass(frozen=True)
class PaceChanged:
    """How often to draw the reply: every ``interval_s``. ``cpu_saturated``: no CPU core is idle
    (the reply is read every ``read_gap_s``; a UI stops what it need not do, a cursor's blink)."""

    interval_s: float
    read_gap_s: float
    cpu_saturated: bool


@dataclass(frozen=True)
class ReplyText:
    """The next part of the reply's text (sanitised; the server's reasoning is left out)."""

    text: str


@dataclass(frozen=True)
class TurnEnded:
    """The reply is finished and stored: ``status`` as stored, ``message`` as read back (``None``
    only if it cannot be read). ``end``: how the server's reply ended (its message, whether the
    server still generates after a cancel). ``paced``: it was read and drawn every
    ``busy_interval_s`` at least once; ``quiet``: it was asked whole."""

    end: StreamEnd
    status: MessageStatus
    message: StoredMessage | None
    quiet: bool
    paced: bool
    busy_interval_s: float


TurnEvent: TypeAlias = (
    PromptSaved | ReplyStarted | PaceChanged | ReplyText | DecodeProgress | TurnEnded
)


def system_prompt(profile: Profile | None, chat: ChatSettings) -> str | None:
    """The system prompt of a new conversation: the profile's own, else the ``[chat]`` one."""
    if profile is not None and profile.system_prompt:
        return profile.system_prompt
    return chat.system_prompt


def request_messages(store: HistoryStore, conv_id: int) -> list[dict[str, str]]:
    """Messages for the request: the system prompt, then the stored turns up to the last prompt
    (a reply with no text, such as one cancelled before its first token, is left out)."""
    conv = store.conversation(conv_id)
    out: list[dict[str, str]] = []
    if conv is not None and conv.system_prompt:
        out.append({"role": "system", "content": conv.system_prompt})
    msgs = store.messages(conv_id)
    last_user = max((i for i, m in enumerate(msgs) if m.role == "user"), default=-1)
    for msg in msgs[: last_user + 1]:
        if msg.role == "assistant" and not msg.content:
            continue
        out.append({"role": msg.role, "content": msg.content})
    return out


class ChatTurn:
    """One prompt and its reply (or, with no ``prompt``, a new reply to the conversation's last
    prompt). Iterate ``events()`` once; ``cancel()`` and ``offer_slots()`` from the same loop.

    ``pace`` is the caller's (it remembers across turns how busy the cores were); ``extra`` is
    merged into the request (tests and benchmarks: ``ignore_eos``, a source's script)."""

    def __init__(
        self,
        store: HistoryStore,
        chat: ChatSettings,
        *,
        server_url: str,
        profile: Profile | None,
        conversation: Conversation | None,
        prompt: str | None,
        pace: BusyPace,
        api_key: str | None = None,
        extra: Mapping[str, Any] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if prompt is None and conversation is None:
            raise ValueError("a turn needs a prompt or a conversation to answer again")
        self.store = store
        self.chat = chat
        self.server_url = server_url
        self.profile = profile
        self.conversation = conversation
        self.prompt = prompt
        self.pace = pace
        self.api_key = api_key
        self.extra = dict(extra or {})
        self._transport = transport
        self._reply: ReplyEvents | None = None
        self._cancelled = False
        self._offered: DecodeProgress | None = None
        """The count ``offer_slots`` returned last (its caller showed it: not yielded again)."""
        self.quiet: bool | None = None
        """Whether the reply is asked whole (``None`` until decided)."""
        self.paced = False
        """The reply was read and drawn at the busy pace at least once (its footer says so)."""
        self._pace_applied = False
        """The pace was applied to this reply (at its first token)."""

    @property
    def profile_name(self) -> str | None:
        return self.profile.name if self.profile is not None else None

    @property
    def model_name(self) -> str | None:
        return self.profile.model.name if self.profile is not None else None

    def cancel(self) -> None:
        """Stop the reply: it ends with ``TurnEnded`` (status ``cancelled``), its text so far
        kept. Before the request goes out, the reply is cancelled as soon as it starts."""
        self._cancelled = True
        if self._reply is not None:
            self._reply.cancel()

    def offer_slots(self, slots: Sequence[SlotSample]) -> DecodeProgress | None:
        """``/slots`` read elsewhere (the metrics sampler's), for a quiet reply's token count:
        the count to show now, or ``None`` (not quiet, or nothing new). A count returned here is
        not yielded again by ``events()``."""
        reply = self._reply
        if not isinstance(reply, QuietReply):
            return None
        event = reply.offer(slot_progress(slots))
        if event is not None:
            self._offered = event
        return event

    async def events(self) -> AsyncGenerator[TurnEvent, None]:
        """The turn's events, ending with one ``TurnEnded``. Close the generator (``aclosing``)
        when leaving early: a reply left unfinished is stored as ``interrupted``."""
        conv = self.conversation
        profile, model = self.profile_name, self.model_name
        if self.prompt is not None:
            if conv is None:
                conv = self.store.new_conversation(
                    system_prompt=system_prompt(self.profile, self.chat)
                )
                self.conversation = conv
            stored = self.store.add_user_message(conv.id, self.prompt, profile)
            yield PromptSaved(conv, stored)
        assert conv is not None  # checked in __init__
        msg_id = self.store.begin_reply(conv.id, profile, model)
        messages = request_messages(self.store, conv.id)
        decode_as = profile or self.server_url  # an attached server is told apart by its address
        last = self.store.last_decode(decode_as, model)
        quiet = self.quiet = quiet_next(last, self.chat.quiet_above_tps, self.server_url)
        parts: list[str] = []
        end: StreamEnd | None = None
        saturated = False
        async with ChatClient(
            self.server_url,
            self.api_key,
            stall_timeout_s=self.chat.stall_timeout_s,
            transport=self._transport,
        ) as client:
            ask = client.quiet_chat if quiet else client.stream_chat
            reply = ask(
                messages,
                max_tokens=self.chat.max_tokens,
                temperature=self.chat.temperature,
                extra=self.extra or None,
            )
            self._reply = reply
            if self._cancelled:
                reply.cancel()
            self.pace.restart_window()
            try:
                yield ReplyStarted(msg_id, model or profile or "model", quiet)
                last_save = time.monotonic()
                async for event in reply:
                    if isinstance(event, DecodeProgress):
                        if event is not self._offered:  # not shown already by its offer
                            yield event
                    elif isinstance(event, Delta):
                        if not quiet and (self.pace.check() or not self._pace_applied):
                            # From the first token on (time to first token is read unpaced).
                            yield self._apply_pace(reply)
                            saturated = saturated or self.pace.saturated
                        if event.reasoning:
                            continue
                        parts.append(event.text)
                        yield ReplyText(event.text)
                        if time.monotonic() - last_save >= SAVE_EVERY_S:
                            self.store.update_reply(msg_id, "".join(parts))
                            last_save = time.monotonic()
                    elif isinstance(event, StreamEnd):
                        end = event
                if quiet:  # idle cores over the whole reply, measured once at its end
                    self.pace.check()
                    saturated = self.pace.saturated
            except BaseException:
                # Closed early or cancelled from outside (the app is closing): keep what arrived.
                self.store.finish_reply(msg_id, "".join(parts), "interrupted")
                raise
            finally:
                self._reply = None
                await reply.aclose()  # left early: the request is closed now, not when collected
        assert end is not None  # every reply's events end with one StreamEnd
        yield self._finish(msg_id, end, saturated, decode_as)

    def _apply_pace(self, reply: ReplyEvents) -> PaceChanged:
        """Reads of the server at the pace's interval while no core is idle; the event tells the
        renderer to draw as often."""
        self._pace_applied = True
        busy = self.pace.saturated
        interval = self.pace.interval_s
        reply.read_gap_s = interval if busy else 0.0
        self.paced = self.paced or busy
        return PaceChanged(interval, reply.read_gap_s, busy)

    def _finish(self, msg_id: int, end: StreamEnd, saturated: bool, decode_as: str) -> TurnEnded:
        """Store the reply's end and numbers, and how it decoded (the next turn's choice)."""
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
        quiet = bool(self.quiet)
        if (
            status == "complete"
            and timings is not None
            and timings.predicted_n >= MIN_RECORD_TOKENS
        ):
            run = DecodeRun(timings.predicted_per_second, saturated, quiet)
            with contextlib.suppress(HistoryWriteError):  # a hint for the next reply, no more
                self.store.record_decode(decode_as, self.model_name, run)
        return TurnEnded(
            end,
            status,
            self.store.message(msg_id),
            quiet,
            self.paced,
            self.pace.busy_interval_s,
        )
