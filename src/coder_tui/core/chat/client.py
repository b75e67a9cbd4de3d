"""Chat against llama-server or any OpenAI-compatible server, as typed async events.

Owns the client of one server (base URL, API key, timeouts: connect at most ``connect_timeout_s``,
no total limit, a stall watchdog of ``stall_timeout_s``), the request body, the two ways to ask for
a reply (``stream_chat``: ``POST /v1/chat/completions`` with ``stream: true``, read by
``core/chat_stream.py``; ``quiet_chat``: the reply asked whole, ``core/quiet_reply.py``) and the
``/slots`` check. Both yield the same events (``core/chat_events.py``, re-exported here) ending with
one ``StreamEnd``; storing the reply is the caller's (``core/store.py``).

Nothing raises out of the iteration except ``asyncio.CancelledError`` (when the caller's own task
is cancelled; the HTTP request is still closed). Prefer ``cancel()``: it ends the iteration with
``StreamEnd(status="cancelled")`` so the caller can store the partial reply.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx

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
from coder_tui.core.chat.stream import CHAT_PATH, ChatStream
from coder_tui.core.connections import server_http

if TYPE_CHECKING:
    from coder_tui.core.chat.quiet_reply import QuietReply

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
    "StreamEnd",
    "Timings",
    "Usage",
    "check_slots_idle",
]


def _request_body(
    messages: Sequence[Mapping[str, Any]],
    model: str | None,
    max_tokens: int | None,
    temperature: float | None,
    seed: int | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"messages": [dict(m) for m in messages]}
    for key, value in (
        ("model", model),
        ("max_tokens", max_tokens),
        ("temperature", temperature),
        ("seed", seed),
    ):
        if value is not None:
            body[key] = value
    return body


def _root(base_url: str) -> str:
    """The server root: ``http://h:p/v1`` and ``http://h:p/`` both become ``http://h:p``."""
    url = base_url.rstrip("/")
    return url[:-3] if url.endswith("/v1") else url


class ChatClient:
    """An HTTP client for one server. Use ``async with`` or call ``aclose()``.

    ``api_key`` (the key itself; the caller reads it from the configured environment variable) is
    sent as ``Authorization: Bearer``. Proxy variables are ignored unless ``trust_env`` is set: the
    usual server is on localhost.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        connect_timeout_s: float = 5.0,
        stall_timeout_s: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
        trust_env: bool = False,
    ) -> None:
        self.base_url = _root(base_url)
        self.connect_timeout_s = connect_timeout_s
        self.stall_timeout_s = stall_timeout_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = server_http(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(
                connect=connect_timeout_s, read=None, write=30.0, pool=connect_timeout_s
            ),
            transport=transport,
            trust_env=trust_env,
        )

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

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
        body = _request_body(messages, model, max_tokens, temperature, seed)
        body.update(
            {
                "stream": True,
                "stream_options": {"include_usage": True},
                "timings_per_token": False,
                "return_progress": True,
            }
        )
        body.update(extra or {})
        return ChatStream(self, body)

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
        """The same reply asked for whole (``stream: false``), its progress offered by the caller
        or read from ``/slots`` every ``read_gap_s`` (2 s): see ``core/quiet_reply.py``. Same
        events and ``cancel()``."""
        from coder_tui.core.chat.quiet_reply import QuietReply

        body = _request_body(messages, model, max_tokens, temperature, seed)
        body["stream"] = False
        body.update(extra or {})
        return QuietReply(self, body)

    async def check_slots_idle(self, *, wait_s: float = 1.0) -> bool | None:
        """Whether every llama-server slot has stopped processing, polling ``/slots`` for up to
        ``wait_s``. ``None`` when ``/slots`` is unavailable (disabled, not llama-server, down).
        Another client's request on the same server also counts as processing."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                resp = await self._http.get("/slots", timeout=httpx.Timeout(max(wait_s, 0.5)))
                slots = resp.json() if resp.status_code == 200 else None
            except (httpx.HTTPError, ValueError):
                return None
            if not isinstance(slots, list) or not all(isinstance(s, Mapping) for s in slots):
                return None
            if not any(s.get("is_processing") is True for s in slots):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.1)


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
