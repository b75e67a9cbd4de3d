"""OpenAI-style SSE frames for scripted chat servers in tests: one event, one content delta."""

from __future__ import annotations

import json
from typing import Any


def sse(obj: object) -> bytes:
    """One ``data:`` event."""
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def delta(content: str | None = None, reasoning: str | None = None) -> bytes:
    """A chunk with a content and/or reasoning delta, not finished."""
    d: dict[str, Any] = {}
    if content is not None:
        d["content"] = content
    if reasoning is not None:
        d["reasoning_content"] = reasoning
    return sse({"choices": [{"index": 0, "delta": d, "finish_reason": None}]})
