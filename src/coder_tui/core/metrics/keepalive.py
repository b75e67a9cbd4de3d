"""A minimal blocking HTTP/1.1 GET over one kept-alive socket, for polling a local llama-server.

Owns ``KeepAliveGet``: ``get(path)`` sends a prebuilt ``GET`` on a persistent connection and
returns ``(status, body)``, or ``None`` for any failure (refused, reset, timeout, bytes that are not
HTTP, a body over ``MAX_BYTES``); it never raises. Bodies framed by ``Content-Length``, chunked, or
by the connection closing are all read. A connection the server dropped while idle (a restart, its
keep-alive limit) is re-opened once per call; ``Connection: close`` answers are honoured.

Why not httpx: the sampler polls two endpoints every second for the app's whole life, and httpx's
per-request machinery (request and response models, header normalisation, the connection pool,
anyio) costs about a millisecond of CPU per request, the largest part of the sampler's budget. A
prebuilt request on one socket and a parse of the few header fields that frame the body cost tens
of microseconds. Plain ``http://`` only (HTTPS stays with httpx, see ``server``); one caller at a
time (the probe's worker thread). Parsing the payloads is ``server``'s.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

MAX_BYTES = 8 << 20
"""A head plus body over this (8 MiB) is not a metrics answer: the connection is dropped."""
_RECV = 65536


class _Bad(Exception):
    """The answer cannot be read (garbage, too big, timed out, closed early); internal only."""


class _Stale(Exception):
    """A reused connection was already closed by the server; internal only."""


def split_http_url(url: str) -> tuple[str, int, str] | None:
    """``(host, port, path prefix)`` of an ``http://`` URL; ``None`` for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port or 80
    except ValueError:
        return None
    if parts.scheme != "http" or not parts.hostname or parts.query or parts.fragment:
        return None
    return parts.hostname, port, parts.path.rstrip("/")


class KeepAliveGet:
    """GETs to one ``host:port`` over one persistent connection; safe to ``close`` from any thread."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout_s: float = 2.0,
        prefix: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.host, self.port, self.timeout_s, self.prefix = host, port, timeout_s, prefix
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._tail = f" HTTP/1.1\r\nHost: {netloc}\r\nAccept: */*\r\n{extra}\r\n".encode("latin-1")
        self._requests: dict[str, bytes] = {}
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.connects = 0
        """Connections opened so far (tests and benchmarks read it: one per server lifetime)."""

    def close(self) -> None:
        """Drop the connection; a ``get`` in flight on another thread finishes first."""
        self._closed = True
        if self._lock.acquire(blocking=False):
            try:
                self._drop()
            finally:
                self._lock.release()

    def get(self, path: str) -> tuple[int, bytes] | None:
        """``(status, body)`` of ``GET prefix + path``, or ``None`` if there was no readable answer."""
        request = self._requests.get(path)
        if request is None:
            request = self._requests[path] = b"GET " + (self.prefix + path).encode() + self._tail
        with self._lock:
            if self._closed:
                return None
            deadline = time.monotonic() + self.timeout_s
            try:
                try:
                    return self._exchange(request, deadline)
                except _Stale:  # the kept-alive connection had gone (a restart): a fresh one
                    return self._exchange(request, deadline)
            except Exception:  # refused, reset, timed out, not HTTP: no answer, never a raise
                self._drop()
                return None
            finally:
                if self._closed:
                    self._drop()

    # -- one request and its answer ------------------------------------------------------------
    def _drop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def _connect(self, deadline: float) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=_left(deadline))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connects += 1
        return sock

    def _exchange(self, request: bytes, deadline: float) -> tuple[int, bytes]:
        sock = self._sock
        fresh = sock is None
        if sock is None:
            sock = self._sock = self._connect(deadline)
        try:
            sock.settimeout(_left(deadline))
            sock.sendall(request)
            data = sock.recv(_RECV)
        except (ConnectionError, TimeoutError) as exc:
            self._drop()
            if fresh or isinstance(exc, TimeoutError):
                raise
            raise _Stale from exc
        if not data:  # closed before answering: on a reused connection, the server dropped it
            self._drop()
            if fresh:
                raise _Bad("closed before answering")
            raise _Stale
        status, body, keep = _Reader(sock, data, deadline).read()
        if not keep:
            self._drop()
        return status, body


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise _Bad("timed out")
    return left


class _Reader:
    """Reads one response from ``sock`` whose first bytes are ``data``."""

    def __init__(self, sock: socket.socket, data: bytes, deadline: float) -> None:
        self.sock, self.buf, self.deadline = sock, bytearray(data), deadline

    def _more(self) -> bool:
        self.sock.settimeout(_left(self.deadline))
        chunk = self.sock.recv(_RECV)
        if not chunk:
            return False
        self.buf += chunk
        if len(self.buf) > MAX_BYTES:
            raise _Bad("answer too large")
        return True

    def _until(self, marker: bytes, start: int) -> int:
        while (i := self.buf.find(marker, start)) < 0:
            if not self._more():
                raise _Bad("closed mid-answer")
        return i

    def _exactly(self, end: int) -> None:
        while len(self.buf) < end:
            if not self._more():
                raise _Bad("closed mid-answer")

    def read(self) -> tuple[int, bytes, bool]:
        """``(status, body, keep the connection)``."""
        head_end = self._until(b"\r\n\r\n", 0)
        lines = self.buf[:head_end].decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if (
            not version.startswith("HTTP/1.")
            or not code.isdigit()
            or (len(rest) > 3 and rest[3] != " ")
        ):
            raise _Bad("not an HTTP answer")
        length: int | None = None
        chunked = False
        keep = version == "HTTP/1.1"
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise _Bad("bad header line")
            name = name.strip().lower()
            if name == "content-length":
                value = value.strip()
                if not value.isdigit():
                    raise _Bad("bad content-length")
                length = int(value)
            elif name == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif name == "connection":
                option = value.strip().lower()
                keep = option != "close" and (keep or option == "keep-alive")
        status = int(code)
        start = head_end + 4
        if status in (204, 304) or 100 <= status < 200:
            return status, b"", keep
        if chunked:
            return status, self._chunked(start), keep
        if length is not None:
            if length > MAX_BYTES:
                raise _Bad("answer too large")
            self._exactly(start + length)
            return status, bytes(self.buf[start : start + length]), keep
        while self._more():  # framed by the connection closing
            pass
        return status, bytes(self.buf[start:]), False

    def _chunked(self, pos: int) -> bytes:
        parts: list[bytes] = []
        while True:
            eol = self._until(b"\r\n", pos)
            size_text = self.buf[pos:eol].split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise _Bad("bad chunk size") from None
            if size < 0:
                raise _Bad("bad chunk size")
            pos = eol + 2
            if size == 0:  # trailers (usually none) end with an empty line
                while True:
                    eol = self._until(b"\r\n", pos)
                    if eol == pos:
                        return b"".join(parts)
                    pos = eol + 2
            self._exactly(pos + size + 2)
            parts.append(bytes(self.buf[pos : pos + size]))
            if self.buf[pos + size : pos + size + 2] != b"\r\n":
                raise _Bad("bad chunk end")
            pos += size + 2
