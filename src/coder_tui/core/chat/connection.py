"""The connection to one chat server, and what both ways of asking it for a reply share.

Owns ``ChatConnection`` (the HTTP client of one server: base URL, API key, timeouts: connect at
most ``connect_timeout_s``, no total limit, a stall watchdog of ``stall_timeout_s``; and the
``/slots`` check), the request body and ``CHAT_PATH``, and the base of a reply's events
(``ReplyEvents``: a queue the request's task fills, ``cancel()``, the iteration) with the two
endings every transport shares: ``end_for_failure`` (an exception of the HTTP request as a
``StreamEnd`` status) and ``still_generating`` (the ``/slots`` check after a cancel or a stall).

The two kinds of reply build on it, ``core/chat/stream.py`` (``stream: true``) and
``core/chat/quiet_reply.py`` (the same stream, shown whole); ``core/chat/client.py`` puts them together
as ``ChatClient``. So every module here imports this one and none imports the client back.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

import httpx

from coder_tui.core.chat.events import ChatEvent, StreamTally
from coder_tui.core.connections import server_http

CHAT_PATH = "/v1/chat/completions"


def request_body(
    messages: Sequence[Mapping[str, Any]],
    model: str | None,
    max_tokens: int | None,
    temperature: float | None,
    seed: int | None,
) -> dict[str, Any]:
    """The fields of a chat request both transports send (each adds its own)."""
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


def server_root(base_url: str) -> str:
    """The server root: ``http://h:p/v1`` and ``http://h:p/`` both become ``http://h:p``."""
    url = base_url.rstrip("/")
    return url[:-3] if url.endswith("/v1") else url


class ChatConnection:
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
        self.base_url = server_root(base_url)
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

    @property
    def http(self) -> httpx.AsyncClient:
        """The HTTP client the transports send their requests with."""
        return self._http

    async def aclose(self) -> None:
        await self._http.aclose()

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


def end_for_failure(exc: Exception, state: StreamTally, client: ChatConnection) -> None:
    """End ``state`` for an exception of the HTTP request (connect, timeout, broken stream)."""
    url = client.base_url
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout):
        state.end("timed_out", f"no connection to {url} within {client.connect_timeout_s:g} s")
    elif isinstance(exc, httpx.ConnectError):
        state.end("connection_lost", f"cannot connect to {url}: {text}")
    elif isinstance(exc, httpx.DecodingError):
        state.end("bad_stream", f"cannot decode the response: {text}")
    elif isinstance(exc, (httpx.TransportError, httpx.StreamError)):
        state.ended_early(f"connection lost: {text}")
    else:
        state.end("bad_stream", f"internal error: {exc!r}")


async def still_generating(
    client: ChatConnection, state: StreamTally, wait_s: float = 1.0
) -> bool | None:
    """After a cancel or a stall: is the server still generating (``/slots``, up to ``wait_s``)?
    ``None`` when not asked (the reply ended otherwise) or unknown."""
    if state.status != "cancelled" and not state.stalled:
        return None
    try:
        idle = await client.check_slots_idle(wait_s=wait_s)
    except Exception:
        return None
    return None if idle is None else not idle


class _Cancel:
    """The marker ``cancel()`` puts on a reply's queue."""


CANCEL = _Cancel()


class ReplyEvents(abc.ABC):
    """What both ways of getting a reply share (``ChatStream``, ``QuietReply``): a queue the
    request's task fills, ``cancel()``, and the iteration over ``_run()``'s events."""

    def __init__(self, client: ChatConnection, body: dict[str, Any]) -> None:
        self._client = client
        self._body = body
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._cancel_requested = False
        self.read_gap_s = 0.0
        """Seconds between reads of the server (each kind says how it uses them)."""
        self._gen = self._run()

    @abc.abstractmethod
    def _run(self) -> AsyncGenerator[ChatEvent, None]:
        """The events of the reply, ending with one ``StreamEnd``."""

    def cancel(self) -> None:
        """Ask the reply to stop; the iteration ends with ``StreamEnd(status="cancelled")``."""
        if not self._cancel_requested:
            self._cancel_requested = True
            self._queue.put_nowait(CANCEL)

    @property
    def cancel_requested(self) -> bool:
        return self._cancel_requested

    def __aiter__(self) -> ReplyEvents:
        return self

    async def __anext__(self) -> ChatEvent:
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        await self._gen.aclose()
