"""One chat turn, end to end and headless: the prompt saved, the reply asked for, paced, saved.

Owns ``ChatTurn``: saving the prompt (a new conversation first when there is none; a prompt that
cannot fit the context is refused before it is stored), the request's messages (the
conversation's system prompt, then its newest turns up to the last prompt that fit the server's
context, ``core/chat/context.py``), the choice of a
quiet reply (shown whole, ``core/chat/quiet_reply.py``) or a streamed one
(``core/chat/reply_mode.py`` decides, from how the previous reply of the same profile and model
decoded), pacing a streamed reply while no CPU core is idle (``core/chat/pacing.py``: the reply
is then read from the socket every ``busy_refresh_s``, and the caller told to draw as seldom),
saving the reply as it arrives (about once a second), finishing it with its numbers, recording how
it decoded for the next turn's choice, and cancelling.

``ChatTurn.events()`` is an async generator of ``TurnEvent`` values (frozen dataclasses,
``core/chat/turn_events.py``) that a UI only renders: ``PromptSaved`` (or one
``PromptRefused``, the end), ``ContextFitted``, ``ReplyStarted``, then ``PaceChanged``,
``ReplyText`` and ``DecodeProgress`` (a quiet reply's token count) in any order, and one
``TurnEnded``. The request
goes out when the caller asks for the event after ``ReplyStarted``, so a UI can draw the reply's
place first. Coalescing the text into a few screen updates a second is the renderer's
(``core/chat/coalesce.py``, at ``PaceChanged.interval_s``); the server's lifecycle, the App's.
Knows nothing of Textual: ``tests/core/test_chat_session.py`` runs a whole turn with Textual not
importable.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from coder_tui.core.chat.client import ChatClient
from coder_tui.core.chat.connection import ReplyEvents
from coder_tui.core.chat.context import ContextCounter, ContextPlan, TooBig
from coder_tui.core.chat.events import DecodeProgress, Delta, StreamEnd
from coder_tui.core.chat.pacing import BusyPace
from coder_tui.core.chat.reply_mode import quiet_next
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
from coder_tui.core.config.identity import profile_identity
from coder_tui.core.config.schema import ChatSettings, Profile
from coder_tui.core.exporter.families import quant_of
from coder_tui.core.store.history import HistoryStore, HistoryWriteError
from coder_tui.core.store.schema import (
    Conversation,
    DecodeOwner,
    DecodeRun,
    StoredMessage,
    status_for_end,
)

MIN_RECORD_TOKENS = 16
"""A reply shorter than this says too little about the decode speed to steer the next one."""
SAVE_EVERY_S = 1.0
"""How often a streaming reply's text so far is saved (a crash loses at most this much)."""


def system_prompt(profile: Profile | None, chat: ChatSettings) -> str | None:
    """The system prompt of a new conversation: the profile's own, else the ``[chat]`` one."""
    if profile is not None and profile.system_prompt:
        return profile.system_prompt
    return chat.system_prompt


@dataclass(frozen=True)
class Asked:
    """What a reply is asked with: the conversation's own settings, else the ``[chat]`` ones."""

    max_tokens: int | None
    temperature: float | None
    top_p: float | None

    def request_fields(self, extra: Mapping[str, Any]) -> dict[str, Any]:
        """``extra`` with the conversation's top-p (``extra``'s own wins: tests and benchmarks)."""
        return {**({"top_p": self.top_p} if self.top_p is not None else {}), **extra}


def asked_with(conv: Conversation, chat: ChatSettings) -> Asked:
    return Asked(
        conv.max_tokens if conv.max_tokens is not None else chat.max_tokens,
        conv.temperature if conv.temperature is not None else chat.temperature,
        conv.top_p,
    )


def context_used(plan: ContextPlan, end: StreamEnd) -> int:
    """Tokens of the context a finished reply filled: the server's usage (prompt and reply),
    else the request's count plus the tokens decoded."""
    usage = end.usage
    if usage is not None and usage.prompt_tokens:
        return usage.prompt_tokens + (usage.completion_tokens or 0)
    decoded = end.timings.predicted_n if end.timings is not None else 0
    return plan.tokens + decoded


class ChatTurn:
    """One prompt and its reply (or, with no ``prompt``, a new reply to the conversation's last
    prompt). Iterate ``events()`` once; ``cancel()`` from the same loop.

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
        counter: ContextCounter | None = None,
        api_key: str | None = None,
        extra: Mapping[str, Any] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        replacing: int | None = None,
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
        self.counter = counter or ContextCounter()
        """Counts the request's tokens (the caller's, to keep its counts across turns)."""
        self.api_key = api_key
        self.extra = dict(extra or {})
        self.replacing = replacing
        """A reply this turn answers again (kept as an alternative; the request stops before it)."""
        self._transport = transport
        self._reply: ReplyEvents | None = None
        self._cancelled = False
        self.quiet: bool | None = None
        """Whether the reply is shown whole (``None`` until decided)."""
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

    async def events(self) -> AsyncGenerator[TurnEvent, None]:
        """The turn's events, ending with one ``TurnEnded`` (or one ``PromptRefused``: the prompt
        cannot fit the context, nothing stored or sent). Close the generator (``aclosing``) when
        leaving early: a reply left unfinished is stored as ``interrupted``."""
        async with (
            ChatClient(
                self.server_url,
                self.api_key,
                stall_timeout_s=self.chat.stall_timeout_s,
                transport=self._transport,
            ) as client,
            contextlib.aclosing(self._turn(client)) as turn,
        ):
            async for event in turn:
                yield event

    async def _turn(self, client: ChatClient) -> AsyncGenerator[TurnEvent, None]:
        conv = self.conversation
        profile, model = self.profile_name, self.model_name
        counter, http = self.counter, client.http
        if self.prompt is not None:
            system = (
                conv.system_prompt if conv is not None else system_prompt(self.profile, self.chat)
            )
            tokens, refused = await counter.check_prompt(
                http, system, self.prompt, self.chat.max_tokens
            )
            if refused is not None:
                yield PromptRefused(refused, self.prompt)
                return
            if conv is None:
                conv = self.store.new_conversation(system_prompt=system)
                self.conversation = conv
            stored = self.store.add_user_message(conv.id, self.prompt, profile)
            counter.remember(stored, tokens)
            yield PromptSaved(conv, stored)
        assert conv is not None  # checked in __init__
        conv = self.store.conversation(conv.id) or conv  # its own settings, as stored now
        asked = asked_with(conv, self.chat)
        history = self._history(conv.id)
        plan = await counter.plan(http, conv.system_prompt, history, asked.max_tokens)
        if isinstance(plan, TooBig):  # answering again a prompt that no longer fits
            yield PromptRefused(plan, None)
            return
        yield ContextFitted(plan)
        identity = profile_identity(self.profile) if self.profile is not None else None
        msg_id = self.store.begin_reply(
            conv.id,
            profile,
            model,
            quant=(quant_of(model) or None) if model else None,
            replacing=self.replacing,
            identity=identity,
        )
        decode_as = DecodeOwner(identity, self.server_url)  # no profile: by the server's address
        last = self.store.last_decode(decode_as)
        quiet = self.quiet = quiet_next(last, self.chat.quiet_above_tps, self.server_url)
        parts: list[str] = []
        end: StreamEnd | None = None
        saturated = False
        ask = client.quiet_chat if quiet else client.stream_chat
        reply = ask(
            list(plan.messages),
            max_tokens=asked.max_tokens,
            temperature=asked.temperature,
            extra=asked.request_fields(self.extra) or None,
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
        yield self._finish(msg_id, end, saturated, decode_as, plan)

    def _history(self, conv_id: int) -> list[StoredMessage]:
        """The conversation, up to the reply answered again when there is one."""
        msgs = self.store.messages(conv_id)
        if self.replacing is None:
            return msgs
        return list(itertools.takewhile(lambda m: m.id != self.replacing, msgs))

    def _apply_pace(self, reply: ReplyEvents) -> PaceChanged:
        """Reads of the server at the pace's interval while no core is idle; the event tells the
        renderer to draw as often."""
        self._pace_applied = True
        busy = self.pace.saturated
        interval = self.pace.interval_s
        reply.read_gap_s = interval if busy else 0.0
        self.paced = self.paced or busy
        return PaceChanged(interval, reply.read_gap_s, busy)

    def _finish(
        self, msg_id: int, end: StreamEnd, saturated: bool, owner: DecodeOwner, plan: ContextPlan
    ) -> TurnEnded:
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
            # A cancel's message is its status: stored once, not "cancelled · cancelled".
            error=end.message or None if status not in ("complete", "cancelled") else None,
        )
        quiet = bool(self.quiet)
        if (
            status == "complete"
            and timings is not None
            and timings.predicted_n >= MIN_RECORD_TOKENS
        ):
            run = DecodeRun(timings.predicted_per_second, saturated, quiet)
            with contextlib.suppress(HistoryWriteError):  # a hint for the next reply, no more
                self.store.record_decode(owner, run)
        return TurnEnded(
            end,
            status,
            self.store.message(msg_id),
            quiet,
            self.paced,
            self.pace.busy_interval_s,
            context_used(plan, end),
            plan.n_ctx,
        )
