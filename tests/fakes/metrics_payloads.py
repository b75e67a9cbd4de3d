"""Replays ``/metrics`` and ``/slots`` payloads captured from the real llama-server, one step a poll.

The captures (``tests/fixtures/metrics/``) are the bench demo model serving one 200-token request:
``idle``, ``prompt``, ``generating_a``, ``generating_b``, ``after``. ``Replay.steps`` can be
changed between polls (a fresh server's ``idle`` after ``after``: a restart); ``on_poll`` runs
inside a poll (to make something happen while a tick is sampling).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "metrics"


class Replay:
    """An ``httpx.AsyncClient`` transport that answers each poll with the next captured step."""

    def __init__(self, steps: list[str]) -> None:
        self.steps = steps
        self.polls = {"metrics": 0, "slots": 0}
        self.on_poll: Callable[[], None] | None = None

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self._handle))

    def _handle(self, request: httpx.Request) -> httpx.Response:
        kind = "metrics" if request.url.path == "/metrics" else "slots"
        step = self.steps[min(self.polls[kind], len(self.steps) - 1)]
        self.polls[kind] += 1
        if kind == "slots" and self.on_poll is not None:
            self.on_poll()
        suffix = "txt" if kind == "metrics" else "json"
        return httpx.Response(200, text=(FIX / f"{kind}_{step}.{suffix}").read_text())
