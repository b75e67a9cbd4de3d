"""What one chat turn tells its caller: the ``TurnEvent`` values ``ChatTurn.events()`` yields.

Frozen dataclasses a UI only renders (``core/chat/session.py`` makes them; ``ui/widgets/
chat_turn.py`` draws them): ``PromptSaved`` or ``PromptRefused``, ``ContextFitted``,
``ReplyStarted``, ``PaceChanged``, ``ReplyText``, ``DecodeProgress`` (``core/chat/events.py``)
and ``TurnEnded``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from coder_tui.core.chat.context import ContextPlan, TooBig
from coder_tui.core.chat.events import DecodeProgress, StreamEnd
from coder_tui.core.store.schema import Conversation, MessageStatus, StoredMessage


@dataclass(frozen=True)
class PromptSaved:
    """The prompt is stored, in ``conversation`` (new when the turn began without one)."""

    conversation: Conversation
    message: StoredMessage


@dataclass(frozen=True)
class ReplyStarted:
    """The reply's row is stored (status ``streaming``); the request goes out at the next event.

    ``who``: the name to show (the model, else the profile); ``quiet``: the reply is shown whole,
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
    ``busy_interval_s`` at least once; ``quiet``: it was shown whole."""

    end: StreamEnd
    status: MessageStatus
    message: StoredMessage | None
    quiet: bool
    paced: bool
    busy_interval_s: float
    context_tokens: int | None = None
    """Tokens of the context in use after this reply (prompt and reply)."""
    n_ctx: int | None = None
    """The context of the server's slot (``None``: unknown)."""


@dataclass(frozen=True)
class PromptRefused:
    """The prompt cannot fit the context on its own: nothing was stored or sent. ``prompt``: the
    text to give back to the user (``None`` when answering a stored prompt again)."""

    refusal: TooBig
    prompt: str | None


@dataclass(frozen=True)
class ContextFitted:
    """What of the conversation the request carries (``plan.first_kept_id``: where the model's
    view starts when older turns are left out) and how full the context is before the reply."""

    plan: ContextPlan


TurnEvent: TypeAlias = (
    PromptSaved
    | PromptRefused
    | ContextFitted
    | ReplyStarted
    | PaceChanged
    | ReplyText
    | DecodeProgress
    | TurnEnded
)
