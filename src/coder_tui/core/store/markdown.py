"""Conversations as text: the Markdown export and the one-line numbers under a reply.

Pure functions over the store's frozen records (``store_schema.py``); reading them is
``store.py``'s.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from coder_tui.core.sanitize import sanitize, sanitize_line
from coder_tui.core.store.schema import Conversation, StoredMessage


def conversation_markdown(conv: Conversation, messages: Sequence[StoredMessage]) -> str:
    """Title, then each message with role, profile, model and numbers; the content as it is
    (it is Markdown already)."""
    created = time.strftime("%Y-%m-%d %H:%M", time.localtime(conv.created_at))
    title = sanitize_line(conv.title or "Conversation")
    parts = [f"# {title}", "", f"_Exported from coder-tui; {created}_"]
    if conv.system_prompt:
        parts += ["", "## System prompt", "", conv.system_prompt]
    for msg in messages:
        head = [msg.role.capitalize()]
        head += [sanitize_line(x) for x in (msg.profile, msg.model) if x]
        parts += ["", f"## {' · '.join(head)}", "", msg.content]
        if msg.role == "assistant":
            parts += ["", f"_{stats_line(msg)}_"]
    # Model text goes out as it is (Markdown) but never with escapes or bidi controls in it:
    # the file is read with cat and less as often as in an editor.
    return sanitize("\n".join(parts) + "\n")


def stats_line(msg: StoredMessage) -> str:
    """One line of a reply's numbers: status, tokens, first token, speeds, finish, error."""
    bits: list[str] = [msg.status]
    if msg.prompt_tokens is not None:
        bits.append(f"{msg.prompt_tokens} prompt tokens")
    if msg.completion_tokens is not None:
        bits.append(f"{msg.completion_tokens} tokens")
    if msg.ttft_s is not None:
        bits.append(f"first token {msg.ttft_s:.2f} s")
    if msg.prompt_per_second is not None:
        bits.append(f"prompt {msg.prompt_per_second:.1f} tok/s")
    if msg.predicted_per_second is not None:
        bits.append(f"generation {msg.predicted_per_second:.1f} tok/s")
    if msg.finish_reason:
        bits.append(f"finish {msg.finish_reason}")
    if msg.error:
        bits.append(msg.error)
    return " · ".join(bits)
