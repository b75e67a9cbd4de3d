"""Chat against llama-server or any OpenAI-compatible server, as typed async events.

Owns ``ChatClient``: the connection to one server (``core/chat/connection.py``: base URL, API key,
timeouts, the ``/slots`` check) with the two ways to ask for a reply: ``stream_chat``
(``POST /v1/chat/completions`` with ``stream: true``, read by ``core/chat/stream.py``) and
``quiet_chat`` (the reply shown whole, ``core/chat/quiet_reply.py``). Both yield the same events
(``core/chat/events.py``, re-exported here) ending with one ``StreamEnd``; one whole chat turn
(choosing between them, pacing, storing the reply) is ``core/chat/session.py``'s.

Nothing raises out of the iteration except ``asyncio.CancelledError`` (when the caller's own task
is cancelled; the HTTP request is still closed). Prefer ``cancel()``: it ends the iteration with
``StreamEnd(status="cancelled")`` so the caller can store the partial reply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from coder_tui.core.chat.connection import CHAT_PATH, ChatConnection, request_body
from coder_tui.core.chat.events import (
    ChatEvent,
    DecodeProgress,
    Delta,
    EndStatus,
    Finish,
    PromptProgress,
    StreamEnd,
    Timings,
    Usage,
)
from coder_tui.core.chat.quiet_reply import QuietReply
from coder_tui.core.chat.stream import ChatStream

__all__ = [  # the event types are re-exported: a caller needs only this module
    "CHAT_PATH",
    "ChatClient",
    "ChatEvent",
    "ChatStream",
    "DecodeProgress",
    "Delta",
    "EndStatus",
    "Finish",
    "PromptProgress",
    "QuietReply",
    "StreamEnd",
    "Timings",
    "Usage",
    "check_slots_idle",
]


class ChatClient(ChatConnection):
    """An HTTP client for one server that asks it for replies. Use ``async with`` or call
    ``aclose()``; the constructor's arguments are ``ChatConnection``'s."""

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def stream_chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        model: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> ChatStream:
        """Start a streamed reply to ``messages``; iterate the result for ``ChatEvent`` values.

        Asks for usage (``stream_options.include_usage``) and llama-server's prompt progress
        (``return_progress``, which also keeps a long prompt from tripping the watchdog), and
        turns off per-token timings. ``extra`` is merged last (e.g. ``{"ignore_eos": True}``).
        """
        return ChatStream(self, stream_body(messages, model, max_tokens, temperature, seed, extra))

    def quiet_chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        model: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> QuietReply:
        """The same reply, streamed but read every ``read_gap_s`` (1 s) and shown whole at its
        end, its token count meanwhile: see ``core/chat/quiet_reply.py``. Same events and
        ``cancel()``."""
        return QuietReply(self, stream_body(messages, model, max_tokens, temperature, seed, extra))


def stream_body(
    messages: Sequence[Mapping[str, Any]],
    model: str | None,
    max_tokens: int | None,
    temperature: float | None,
    seed: int | None,
    extra: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """A streamed request: asks for usage (``stream_options.include_usage``) and llama-server's
    prompt progress (``return_progress``, which also keeps a long prompt from tripping the
    watchdog), and turns off per-token timings. ``extra`` is merged last."""
    body = request_body(messages, model, max_tokens, temperature, seed)
    body.update(
        {
            "stream": True,
            "stream_options": {"include_usage": True},
            "timings_per_token": False,
            "return_progress": True,
        }
    )
    body.update(extra or {})
    return body


async def check_slots_idle(
    base_url: str,
    api_key: str | None = None,
    *,
    wait_s: float = 1.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> bool | None:
    """``ChatClient.check_slots_idle`` for a server without a client at hand."""
    async with ChatClient(base_url, api_key, transport=transport) as client:
        return await client.check_slots_idle(wait_s=wait_s)
