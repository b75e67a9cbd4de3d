"""What of a conversation the model sees: the request's messages fitted to the server's context.

Owns the rule that keeps a conversation usable whatever its length: before a reply is asked for,
the request's tokens are counted (the server's ``/tokenize``, cached per stored message; an
estimate from the length where the server cannot tokenize) against the context of one slot
(``/slots`` ``n_ctx``, else ``/props``), less room for the reply (``reply_reserve``). When the
conversation does not fit, its oldest turns are left out of the REQUEST, never out of the
history, and the plan says from which stored message the model's view starts (the chat marks it).
A new prompt that cannot fit on its own is refused before it is stored or sent (``TooBig``, with
its size and the limit). ``fit_messages`` is the pure rule; ``ContextCounter`` asks the server.
``core/chat/session.py`` applies it to each turn; showing the mark and the gauge is the UI's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from coder_tui.core.store.schema import StoredMessage

TOKENS_PER_MESSAGE = 8
"""The chat template's tokens around each message (role markers, separators): a safe upper bound
for the templates llama.cpp ships."""
CHARS_PER_TOKEN = 3.0
"""Characters per token where the server cannot tokenize (an estimate that errs towards more)."""
MAX_TOKENIZE_CHARS = 256 * 1024
"""Longer texts are not sent to ``/tokenize`` (it would cost the server a second a megabyte):
they are estimated, and are far beyond any consumer GPU's context anyway."""
REPLY_SHARE = 4
"""With no smaller ``max_tokens``, a quarter of the context is kept for the reply."""


@dataclass(frozen=True)
class TooBig:
    """A prompt that cannot fit the context on its own: refused before it is stored or sent."""

    tokens: int
    limit: int
    """Tokens a prompt may have: the context less the reply's room and the system prompt."""
    n_ctx: int

    @property
    def notice(self) -> str:
        return (
            f"message not sent: it is about {self.tokens:,} tokens and this context "
            f"({self.n_ctx:,}) leaves {self.limit:,} for a prompt; shorten or split it"
        )


@dataclass(frozen=True)
class ContextPlan:
    """The request's messages and what they leave out. ``first_kept_id``: the stored message the
    model's view starts at when older ones are left out (``None``: none left out)."""

    messages: tuple[Mapping[str, str], ...]
    tokens: int
    """The request's prompt tokens (counted, template overhead included)."""
    n_ctx: int | None
    """The context of one slot (``None``: unknown, nothing is left out)."""
    left_out: int = 0
    first_kept_id: int | None = None

    @property
    def notice(self) -> str | None:
        """The one line that says turns were left out, or ``None``."""
        if not self.left_out:
            return None
        return (
            f"{self.left_out} older message(s) left out of the request to fit the "
            f"{self.n_ctx:,}-token context (kept in the history)"
        )


def reply_reserve(n_ctx: int, max_tokens: int | None) -> int:
    """Tokens kept free for the reply: ``max_tokens``, at most a quarter of the context."""
    share = n_ctx // REPLY_SHARE
    return min(max_tokens, share) if max_tokens else share


def conversation_turns(messages: Sequence[StoredMessage]) -> list[StoredMessage]:
    """The stored turns a request carries: up to the last prompt, replies with no text left out
    (such as one cancelled before its first token)."""
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
    return [
        m
        for m in messages[: last_user + 1]
        if m.role != "system" and not (m.role == "assistant" and not m.content)
    ]


def fit_messages(
    system: str | None,
    system_tokens: int,
    turns: Sequence[StoredMessage],
    counts: Sequence[int],
    n_ctx: int | None,
    reserve: int,
) -> ContextPlan | TooBig:
    """The newest turns that fit ``n_ctx`` less ``reserve`` (``counts``: each turn's tokens).

    The last turn (the prompt) is always kept, or refused as ``TooBig``; older turns are left
    out from the oldest, and the kept ones start with a prompt (a reply without its question
    confuses chat templates)."""
    head: list[Mapping[str, str]] = [{"role": "system", "content": system}] if system else []
    head_tokens = system_tokens + TOKENS_PER_MESSAGE if system else 0
    costs = [c + TOKENS_PER_MESSAGE for c in counts]
    total = head_tokens + sum(costs)
    if n_ctx is None:
        body: list[Mapping[str, str]] = [{"role": m.role, "content": m.content} for m in turns]
        return ContextPlan(tuple(head + body), total, None)
    budget = n_ctx - reserve
    if turns:
        refused = too_big(system_tokens if system else None, counts[-1], n_ctx, reserve)
        if refused is not None:
            return refused
    start, used = len(turns), head_tokens
    while start > 0 and used + costs[start - 1] <= budget:
        start -= 1
        used += costs[start]
    if start:
        while start < len(turns) - 1 and turns[start].role != "user":
            used -= costs[start]
            start += 1
    kept = turns[start:]
    return ContextPlan(
        tuple(head + [{"role": m.role, "content": m.content} for m in kept]),
        used,
        n_ctx,
        left_out=start,
        first_kept_id=kept[0].id if start and kept else None,
    )


def too_big(system_tokens: int | None, tokens: int, n_ctx: int, reserve: int) -> TooBig | None:
    """A prompt of ``tokens`` that cannot fit with the system prompt (``None``: none) and the
    reply's ``reserve``, or ``None`` when it fits."""
    head = system_tokens + TOKENS_PER_MESSAGE if system_tokens is not None else 0
    limit = max(0, n_ctx - reserve - head - TOKENS_PER_MESSAGE)
    return TooBig(tokens, limit, n_ctx) if tokens > limit else None


def estimate_tokens(text: str) -> int:
    """Tokens of ``text`` where the server cannot count them."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


class ContextCounter:
    """Counts tokens with one server, remembering each stored message's count (keep one per
    server across turns: a long conversation is counted once, then only its new messages)."""

    def __init__(self) -> None:
        self._counts: dict[tuple[int, int], int] = {}
        self.tokenize_works: bool | None = None
        """Whether ``/tokenize`` answered (``None``: not asked yet)."""

    async def n_ctx(self, http: httpx.AsyncClient) -> int | None:
        """The context of one slot: ``/slots`` ``n_ctx``, else ``/props``; ``None``: unknown."""
        for path in ("/slots", "/props"):
            try:
                resp = await http.get(path, timeout=httpx.Timeout(5.0))
                data: Any = resp.json() if resp.status_code == 200 else None
            except (httpx.HTTPError, ValueError):
                continue
            n_ctx = _n_ctx_of(data)
            if n_ctx:
                return n_ctx
        return None

    async def count(self, http: httpx.AsyncClient, text: str) -> int:
        """Tokens of ``text`` (``/tokenize``; estimated when it fails or ``text`` is huge)."""
        if len(text) > MAX_TOKENIZE_CHARS or self.tokenize_works is False:
            return estimate_tokens(text)
        try:
            resp = await http.post("/tokenize", json={"content": text}, timeout=httpx.Timeout(30.0))
            tokens = resp.json().get("tokens") if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            tokens = None
        if not isinstance(tokens, list):
            self.tokenize_works = False
            return estimate_tokens(text)
        self.tokenize_works = True
        return len(tokens)

    async def count_message(self, http: httpx.AsyncClient, msg: StoredMessage) -> int:
        """Tokens of a stored message (asked once per message and length)."""
        key = (msg.id, len(msg.content))
        cached = self._counts.get(key)
        if cached is None:
            cached = self._counts[key] = await self.count(http, msg.content)
        return cached

    async def check_prompt(
        self, http: httpx.AsyncClient, system: str | None, prompt: str, max_tokens: int | None
    ) -> tuple[int, TooBig | None]:
        """A new prompt's tokens, and its refusal when it cannot fit the context on its own."""
        tokens = await self.count(http, prompt)
        n_ctx = await self.n_ctx(http)
        if n_ctx is None:
            return tokens, None
        system_tokens = await self.count(http, system) if system else None
        return tokens, too_big(system_tokens, tokens, n_ctx, reply_reserve(n_ctx, max_tokens))

    def remember(self, msg: StoredMessage, tokens: int) -> None:
        """A count made before the message was stored (a new prompt, counted to check it fits)."""
        self._counts[(msg.id, len(msg.content))] = tokens

    async def plan(
        self,
        http: httpx.AsyncClient,
        system: str | None,
        messages: Sequence[StoredMessage],
        max_tokens: int | None,
    ) -> ContextPlan | TooBig:
        """The request for a conversation's stored ``messages`` (``fit_messages``), counted."""
        n_ctx = await self.n_ctx(http)
        turns = conversation_turns(messages)
        counts = [await self.count_message(http, m) for m in turns]
        system_tokens = await self.count(http, system) if system else 0
        reserve = reply_reserve(n_ctx, max_tokens) if n_ctx else 0
        return fit_messages(system, system_tokens, turns, counts, n_ctx, reserve)


def _n_ctx_of(data: Any) -> int | None:
    if isinstance(data, list) and data and isinstance(data[0], Mapping):
        value = data[0].get("n_ctx")
    elif isinstance(data, Mapping):
        settings = data.get("default_generation_settings")
        value = settings.get("n_ctx") if isinstance(settings, Mapping) else None
    else:
        value = None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
