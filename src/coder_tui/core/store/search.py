"""Searching conversations: what the user typed as an FTS5 query, and a hit as a frozen record.

Owns ``fts_query`` (every word quoted, so no input is FTS5 syntax: ``"`` or ``AND(`` are words
like any other; the last word matches as a prefix, as one types) and ``SearchHit``. The tables
and the triggers that fill them are ``schema.py``'s (v3); the query runs in ``history.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from coder_tui.core.store.schema import Conversation

SNIPPET_TOKENS = 10
"""Words of context in a hit's snippet."""


@dataclass(frozen=True)
class SearchHit:
    """A conversation that matched; ``snippet``: the matching text around the words (``[…]``
    marks them), empty when only the title matched; ``message_id``: the message it is from."""

    conversation: Conversation
    snippet: str
    message_id: int | None


def fts_query(text: str) -> str | None:
    """``text`` as an FTS5 query of quoted words (the last one a prefix), ``None`` if empty."""
    words = [w.replace('"', '""') for w in text.split()]
    if not words:
        return None
    quoted = [f'"{w}"' for w in words]
    quoted[-1] += "*"
    return " ".join(quoted)
