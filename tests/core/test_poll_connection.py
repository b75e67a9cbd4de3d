"""PollConnection against a scripted socket server: framing, reuse, and every way an answer goes bad.

The scripted server answers each request on a connection with the next entry of a script: raw
bytes to send, then optionally close, stall or keep the connection. It records what it received.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from coder_tui.core.metrics.poll_connection import MAX_BYTES, PollConnection, split_http_url

Step = tuple[bytes, str]
"""(bytes to send, then: "keep", "close" or "stall")."""


def ok(body: bytes, *extra: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in extra)
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode() + body


class Scripted:
    """A loopback server playing ``script`` in order across connections."""

    def __init__(self, script: list[Step]) -> None:
        self.script = list(script)
        self.requests: list[bytes] = []
        self.connections = 0
        self.closed_by_client = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while self.script and not self._stop.is_set():
                while b"\r\n\r\n" not in buf:
                    try:
                        chunk = conn.recv(4096)
                    except OSError:
                        return
                    if not chunk:
                        self.closed_by_client += 1
                        return
                    buf += chunk
                request, _, buf = buf.partition(b"\r\n\r\n")
                self.requests.append(request)
                data, then = self.script.pop(0)
                conn.sendall(data)
                if then == "close":
                    return
                if then == "stall":
                    self._stop.wait(5)
                    return

    def wait_closed(self, n: int, timeout_s: float) -> bool:
        """Whether the client has closed ``n`` connections within ``timeout_s``."""
        end = time.monotonic() + timeout_s
        while self.closed_by_client < n and time.monotonic() < end:
            time.sleep(0.01)
        return self.closed_by_client >= n

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


@pytest.fixture
def scripted() -> Iterator[Callable[[list[Step]], Scripted]]:
    servers: list[Scripted] = []

    def make(script: list[Step]) -> Scripted:
        servers.append(Scripted(script))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def test_content_length_answers_reuse_one_connection(scripted) -> None:  # type: ignore[no-untyped-def]
    srv = scripted([(ok(b"a"), "keep"), (ok(b"bb"), "keep"), (ok(b""), "keep")])
    conn = PollConnection("127.0.0.1", srv.port, headers={"Authorization": "Bearer k"})
    assert conn.get("/metrics") == (200, b"a")
    assert conn.get("/slots") == (200, b"bb")
    assert conn.get("/slots") == (200, b"")
    assert conn.connects == 1 and srv.connections == 1
    first = srv.requests[0].decode()
    assert first.startswith("GET /metrics HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{srv.port}" in first and "Authorization: Bearer k" in first
    conn.close()
    assert conn.get("/slots") is None  # closed for good


def test_release_closes_the_connection_and_the_next_get_opens_one(scripted) -> None:  # type: ignore[no-untyped-def]
    """After a poll the server holds no idle connection from us (llama-server would wake 100
    times a second watching it)."""
    srv = scripted([(ok(b"a"), "keep"), (ok(b"b"), "keep"), (ok(b"c"), "keep")])
    conn = PollConnection("127.0.0.1", srv.port)
    assert conn.get("/slots") == (200, b"a")
    assert conn.get("/metrics") == (200, b"b")  # one poll: one connection
    conn.release()
    assert srv.wait_closed(1, timeout_s=2.0)  # the server saw our side close
    assert conn.get("/slots") == (200, b"c")
    assert conn.connects == 2 and srv.connections == 2
    conn.close()


def test_chunked_and_close_delimited_bodies(scripted) -> None:  # type: ignore[no-untyped-def]
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\nabc\r\n0A\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    old = b"HTTP/1.0 501 Not Implemented\r\nContent-Type: text/plain\r\n\r\noff"
    srv = scripted([(chunked, "keep"), (old, "close"), (ok(b"x"), "keep")])
    conn = PollConnection("127.0.0.1", srv.port)
    assert conn.get("/a") == (200, b"abc0123456789")
    assert conn.get("/b") == (501, b"off")  # framed by the close: a new connection next
    assert conn.get("/c") == (200, b"x")
    assert conn.connects == 2


def test_connection_close_header_is_honoured(scripted) -> None:  # type: ignore[no-untyped-def]
    srv = scripted([(ok(b"1", "Connection: close"), "close"), (ok(b"2"), "keep")])
    conn = PollConnection("127.0.0.1", srv.port)
    assert conn.get("/a") == (200, b"1")
    assert conn.get("/a") == (200, b"2")
    assert conn.connects == 2


def test_a_connection_dropped_while_idle_is_reopened(scripted) -> None:  # type: ignore[no-untyped-def]
    """The server restarted or hit its keep-alive limit without saying so: one silent retry."""
    srv = scripted([(ok(b"1"), "close"), (ok(b"2"), "keep")])
    conn = PollConnection("127.0.0.1", srv.port)
    assert conn.get("/a") == (200, b"1")
    time.sleep(0.05)  # the server has closed its side by now
    assert conn.get("/a") == (200, b"2")
    assert conn.connects == 2


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\xffgarbage\r\n\r\n",
        b"HTTP/1.1 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY",
    ],
)
def test_garbage_is_no_answer_and_the_next_call_reconnects(scripted, data: bytes) -> None:  # type: ignore[no-untyped-def]
    srv = scripted([(data, "close"), (ok(b"fine"), "keep")])
    conn = PollConnection("127.0.0.1", srv.port, timeout_s=1)
    assert conn.get("/a") is None
    assert conn.get("/a") == (200, b"fine")


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    ],
)
def test_malformed_heads_that_http_client_tolerates(scripted, data: bytes) -> None:  # type: ignore[no-untyped-def]
    """The standard library reads these as an empty answer (the probe's parse then finds no
    data); what matters is that nothing raises and the next call works."""
    srv = scripted([(data, "close"), (ok(b"fine"), "keep")])
    conn = PollConnection("127.0.0.1", srv.port, timeout_s=1)
    assert conn.get("/a") in (None, (200, b""))
    assert conn.get("/a") == (200, b"fine")


def test_closed_mid_answer(scripted) -> None:  # type: ignore[no-untyped-def]
    half = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b"
    srv = scripted([(half, "close"), (b"HTTP/1.1 200 OK\r\nContent-", "close")])
    conn = PollConnection("127.0.0.1", srv.port)
    assert conn.get("/a") is None
    # Closed inside the head: http.client ends the head at the close, an empty answer.
    assert conn.get("/a") in (None, (200, b""))


def test_stall_times_out(scripted) -> None:  # type: ignore[no-untyped-def]
    srv = scripted([(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "stall")])
    conn = PollConnection("127.0.0.1", srv.port, timeout_s=0.3)
    t0 = time.monotonic()
    assert conn.get("/a") is None
    assert time.monotonic() - t0 < 1.5


def test_silent_server_times_out(scripted) -> None:  # type: ignore[no-untyped-def]
    srv = scripted([(b"", "stall")])
    conn = PollConnection("127.0.0.1", srv.port, timeout_s=0.3)
    t0 = time.monotonic()
    assert conn.get("/a") is None
    assert time.monotonic() - t0 < 1.5


def test_too_large_is_no_answer(scripted) -> None:  # type: ignore[no-untyped-def]
    big = f"HTTP/1.1 200 OK\r\nContent-Length: {MAX_BYTES + 1}\r\n\r\n".encode()
    srv = scripted([(big, "close")])
    assert PollConnection("127.0.0.1", srv.port).get("/a") is None


def test_refused() -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    t0 = time.monotonic()
    assert PollConnection("127.0.0.1", port).get("/a") is None
    assert time.monotonic() - t0 < 1.0


def test_close_from_another_thread_during_a_request(scripted) -> None:  # type: ignore[no-untyped-def]
    srv = scripted([(b"", "stall")])
    conn = PollConnection("127.0.0.1", srv.port, timeout_s=0.5)
    result: list[object] = []
    t = threading.Thread(target=lambda: result.append(conn.get("/a")))
    t.start()
    time.sleep(0.1)
    conn.close()  # does not wait for the request; the request drops the socket when it ends
    t.join(2)
    assert result == [None] and conn._conn is None


@pytest.mark.parametrize(
    ("url", "want"),
    [
        ("http://127.0.0.1:8080", ("127.0.0.1", 8080, "")),
        ("http://localhost:8080/", ("localhost", 8080, "")),
        ("http://host/llama/", ("host", 80, "/llama")),
        ("http://[::1]:9/", ("::1", 9, "")),
        ("https://host:443", None),
        ("http://host:99999", None),
        ("ftp://host", None),
        ("http://", None),
    ],
)
def test_split_http_url(url: str, want: object) -> None:
    assert split_http_url(url) == want
