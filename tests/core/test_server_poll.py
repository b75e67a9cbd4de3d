"""ServerProbe over its poll connection, against a stdlib HTTP/1.1 server serving captured payloads.

Checks when ``/metrics`` is skipped (every slot idle and ``/slots`` unchanged, or the same requests
generating) and when it is not,
that a request finishing between two polls is still counted, and restarts and outages.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from coder_tui.core.metrics import server as server_mod
from coder_tui.core.metrics.server import ServerProbe
from coder_tui.core.metrics.types import ServerPhase

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "metrics"


class Fake:
    """Serves ``metrics_<state>.txt`` and ``slots_<state>.json``; counts requests per path."""

    def __init__(self, port: int = 0) -> None:
        self.state = "idle"
        self.hits: dict[str, int] = {}
        self.auth: list[str | None] = []
        self.conns: list[socket.socket] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                fake.conns.append(self.request)
                super().setup()

            def do_GET(self) -> None:
                fake.hits[self.path] = fake.hits.get(self.path, 0) + 1
                fake.auth.append(self.headers.get("Authorization"))
                name = {"/metrics": "metrics_{}.txt", "/slots": "slots_{}.json"}.get(self.path)
                body = (FIX / name.format(fake.state)).read_bytes() if name else b"nope"
                self.send_response(200 if name else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """As a dying server: stop listening and drop the kept-alive connections too."""
        self.httpd.shutdown()
        self.httpd.server_close()
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def fake() -> Iterator[Fake]:
    f = Fake()
    yield f
    f.stop()


async def test_idle_and_unchanged_skips_metrics(fake: Fake) -> None:
    probe = ServerProbe(fake.url, min_interval_s=0, api_key="sekrit")
    first = await probe.sample()
    assert first.phase is ServerPhase.IDLE and first.metrics_available and first.slots_available
    for _ in range(3):
        s = await probe.sample()
        assert s.metrics_available and s.prompt_tokens_per_s == 0
    assert fake.hits == {"/slots": 4, "/metrics": 1} and probe.metrics_skipped == 3
    assert probe._conn is not None and probe._conn.connects == 4  # one per poll, none kept
    assert set(fake.auth) == {"Bearer sekrit"}
    await probe.aclose()


async def test_a_request_between_two_polls_is_counted(fake: Fake) -> None:
    """Idle, then idle again with the slot's new task and moved counters: /metrics is asked."""
    probe = ServerProbe(fake.url, min_interval_s=0)
    await probe.sample()
    fake.state = "after"
    s = await probe.sample()
    assert fake.hits["/metrics"] == 2
    assert s.generation_tokens_total == 200 and s.generation_tokens_per_s and s.interval_s
    assert s.generation_tokens_per_s == pytest.approx(200 / s.interval_s)
    again = await probe.sample()
    assert fake.hits["/metrics"] == 2 and again.generation_tokens_per_s == 0
    assert again.generation_tokens_total == 200 and again.kv_used_tokens == 220
    await probe.aclose()


async def test_a_prompt_or_a_new_request_asks_metrics(fake: Fake) -> None:
    """A prompt being processed, then its first poll generating: the counters move (the prompt's
    tokens are added when it ends), so /metrics is asked every time."""
    fake.state = "prompt"
    probe = ServerProbe(fake.url, min_interval_s=0)
    for _ in range(2):
        s = await probe.sample()
    assert s.phase is ServerPhase.PROMPT
    fake.state = "generating_a"
    s = await probe.sample()
    assert s.phase is ServerPhase.GENERATING and s.prompt_tokens_total == 21
    assert fake.hits == {"/slots": 3, "/metrics": 3} and probe.metrics_skipped == 0
    assert probe._conn is not None and probe._conn.connects == 3  # both endpoints on one
    await probe.aclose()


async def test_the_same_requests_generating_skip_metrics(fake: Fake) -> None:
    """While the same requests generate, llama-server's token counters cannot move: /metrics is
    not asked; the live speed comes from the slots' progress; the counters' deltas then span the
    gap when the request ends."""
    fake.state = "generating_a"
    probe = ServerProbe(fake.url, min_interval_s=0)
    first = await probe.sample()
    assert first.decode_calls_per_s is None  # no baseline yet
    fake.state = "generating_b"
    held = await probe.sample()
    assert fake.hits == {"/slots": 2, "/metrics": 1} and probe.metrics_skipped == 1
    assert held.phase is ServerPhase.GENERATING and held.metrics_available
    assert held.interval_s and held.generation_tokens_per_s == pytest.approx(
        (140 - 55) / held.interval_s
    )
    assert held.prompt_tokens_per_s == 0 and held.generation_tokens_per_busy_s is None
    assert held.prompt_tokens_total == 21 and held.requests_processing == 1
    assert held.kv_used_tokens == sum(s.context_tokens or 0 for s in held.slots)
    fake.state = "after"  # the request ended: /metrics again
    end = await probe.sample()
    assert fake.hits == {"/slots": 3, "/metrics": 2}
    assert end.phase is ServerPhase.IDLE and end.generation_tokens_total == 200
    # 200 decode calls since the first poll's 55, over both intervals, not the last one alone
    span = held.interval_s + (end.interval_s or 0)
    assert end.decode_calls_per_s == pytest.approx((200 - 55) / span)
    # the request's 200 tokens less the 140 the slots had shown: its tail in the last interval
    assert end.interval_s and end.generation_tokens_per_s == pytest.approx(60 / end.interval_s)
    await probe.aclose()


async def test_a_long_generation_still_reads_metrics_after_max_age(
    fake: Fake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_mod, "METRICS_MAX_AGE_S", 0.0)
    fake.state = "generating_a"
    probe = ServerProbe(fake.url, min_interval_s=0)
    for _ in range(3):
        await probe.sample()
    assert fake.hits == {"/slots": 3, "/metrics": 3} and probe.metrics_skipped == 0
    await probe.aclose()


async def test_metrics_are_refreshed_after_max_age(
    fake: Fake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_mod, "METRICS_MAX_AGE_S", 0.0)
    probe = ServerProbe(fake.url, min_interval_s=0)
    for _ in range(3):
        await probe.sample()
    assert fake.hits == {"/slots": 3, "/metrics": 3}
    await probe.aclose()


async def test_outage_and_restart_on_the_same_port(fake: Fake) -> None:
    probe = ServerProbe(fake.url, min_interval_s=0, timeout_s=1)
    assert (await probe.sample()).phase is ServerPhase.IDLE
    port = fake.port
    fake.stop()
    down = await probe.sample()
    assert down.phase is ServerPhase.DOWN and down.error
    again = Fake(port)
    try:
        again.state = "after"
        back = await probe.sample()
        assert back.phase is ServerPhase.IDLE and back.generation_tokens_total == 200
        assert back.generation_tokens_per_s is None  # a new baseline after the outage
        assert again.hits == {"/slots": 1, "/metrics": 1}
    finally:
        await probe.aclose()
        again.stop()


async def test_reset_to_a_new_address_reconnects(fake: Fake) -> None:
    other = Fake()
    try:
        probe = ServerProbe(fake.url, min_interval_s=0)
        await probe.sample()
        probe.reset(other.url)
        s = await probe.sample()
        assert s.metrics_available and other.hits == {"/slots": 1, "/metrics": 1}
        await probe.aclose()
    finally:
        other.stop()


async def test_https_and_callers_clients_keep_httpx() -> None:
    import httpx

    assert ServerProbe("https://remote:8080")._poll_connection() is None
    async with httpx.AsyncClient() as client:
        assert ServerProbe("http://127.0.0.1:1", client=client)._poll_connection() is None
    probe = ServerProbe("http://127.0.0.1:1")
    assert probe._poll_connection() is not None
    await probe.aclose()
