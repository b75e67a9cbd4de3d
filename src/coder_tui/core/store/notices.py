"""What the user is told about a conversation as it opens: another instance has it open, or it
was written by another model than the one serving now; and reading its settings from the form.

Pure functions over the store's frozen records (``schema.py``), each line one sentence; showing
them is the UI's. Text from the store goes through ``core/sanitize.py`` here, once.
"""

from __future__ import annotations

from collections.abc import Sequence

from coder_tui.core.sanitize import sanitize_line
from coder_tui.core.store.schema import Conversation, ConversationSettings, Owner, StoredMessage


def taken_notice(conv: Conversation, owner: Owner, *, at_start: bool) -> str:
    """Another coder-tui has ``conv`` open: at start a new conversation begins instead."""
    title = sanitize_line(conv.title or f"conversation {conv.id}")
    then = "starting a new conversation" if at_start else "it stays there"
    return f"{title!r} is open in another coder-tui (pid {owner.pid}): {then}"


def _writer(msg: StoredMessage) -> str:
    bits = [b for b in (msg.profile, msg.model) if b]
    return sanitize_line(" · ".join(bits)) if bits else "another model"


def other_model_notice(
    messages: Sequence[StoredMessage], profile: str | None, model: str | None
) -> str | None:
    """A line when the newest reply was written by another profile or model than the one that
    will answer now (``None`` when the same, or nothing is known)."""
    replies = [m for m in messages if m.role == "assistant" and (m.profile or m.model)]
    if not replies or (profile is None and model is None):
        return None
    last = replies[-1]
    same_profile = profile is None or last.profile is None or last.profile == profile
    same_model = model is None or last.model is None or last.model == model
    if same_profile and same_model:
        return None
    now = sanitize_line(" · ".join(b for b in (profile, model) if b))
    return f"this conversation was written by {_writer(last)}; replies now come from {now}"


def _shown(value: float) -> str:
    return f"{int(value):,}" if value == int(value) else f"{value:g}"


def _number(text: str, name: str, low: float, high: float) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name}: {sanitize_line(text)!r} is not a number") from None
    if not low <= value <= high:
        raise ValueError(f"{name}: {_shown(value)} is outside {_shown(low)} to {_shown(high)}")
    return value


def parse_settings(
    system_prompt: str, temperature: str, top_p: str, max_tokens: str
) -> ConversationSettings:
    """A conversation's settings as typed in the app (blank: the config's); ``ValueError`` with
    one line naming the field for a bad value."""
    tokens = _number(max_tokens, "max tokens", 1, 1 << 20)
    if tokens is not None and tokens != int(tokens):
        raise ValueError(f"max tokens: {_shown(tokens)} is not a whole number")
    return ConversationSettings(
        system_prompt=system_prompt.strip() or None,
        temperature=_number(temperature, "temperature", 0.0, 5.0),
        top_p=_number(top_p, "top-p", 0.0, 1.0),
        max_tokens=int(tokens) if tokens is not None else None,
    )
