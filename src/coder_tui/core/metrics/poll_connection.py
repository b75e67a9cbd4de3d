"""Blocking GETs to a local llama-server over one connection per poll, closed after the poll.

Owns ``PollConnection``: ``get(path)`` sends ``GET`` on an ``http.client`` connection and returns
``(status, body)``, or ``None`` for any failure (refused, reset, timeout, bytes that are not HTTP, a
body over ``MAX_BYTES``); it never raises. The requests of one poll (``/slots``, then ``/metrics``)
share the connection; ``release()`` closes it when the poll is done. A connection the server
dropped (a restart) is re-opened once per call; ``Connection: close`` is honoured.

Why closed between polls: llama-server (its cpp-httplib 0.59, ``detail::keep_alive``) checks
an idle kept-alive connection every 10 ms (``CPPHTTPLIB_KEEPALIVE_TIMEOUT_CHECK_INTERVAL_USECOND``)
for up to 5 s. A probe that comes back every 1-2 s keeps it alive for good: one of the server's threads then
wakes 100 times a second, and with every core decoding each wake stalls the model's threads at
their next barrier (measured in docs/performance.md, "Idle connections wake llama-server"). A
new loopback connection per poll costs this process about 0.1 ms.

Why not httpx: the sampler polls two endpoints every second for the app's whole life, and httpx's
per-request machinery (request and response models, the pool, anyio) costs about a millisecond of
CPU per request, the largest part of the sampler's budget; the standard library's connection costs
a fraction of that. Plain ``http://`` only (HTTPS stays with httpx, see ``server``); one caller at
a time (the probe's worker thread). Parsing the payloads is ``server``'s.
"""

from __future__ import annotations

import contextlib
import http.client
import threading
from collections.abc import Mapping
from urllib.parse import urlsplit

MAX_BYTES = 8 << 20
"""A body over this (8 MiB) is not a metrics answer: the connection is dropped."""

_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
"""What a reused connection that the server had already closed raises on the next request."""


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


class PollConnection:
    """GETs to one ``host:port``, one connection per poll; safe to ``close`` from any thread."""

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
        self._headers = {"Accept": "*/*", **(headers or {})}
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.connects = 0
        """Connections opened so far (tests and benchmarks read it: one per poll)."""

    def close(self) -> None:
        """Drop the connection; a ``get`` in flight on another thread finishes first."""
        self._closed = True
        if self._lock.acquire(blocking=False):
            try:
                self._drop()
            finally:
                self._lock.release()

    def release(self) -> None:
        """The poll is done: close the connection, so the server holds no idle one until the next
        ``get`` opens a new one."""
        with self._lock:
            self._drop()

    def get(self, path: str) -> tuple[int, bytes] | None:
        """``(status, body)`` of ``GET prefix + path``, or ``None`` if there was no readable answer."""
        with self._lock:
            if self._closed:
                return None
            try:
                reused = self._conn is not None and self._conn.sock is not None
                try:
                    return self._exchange(self.prefix + path)
                except _STALE:
                    if not reused:
                        raise
                    self._drop()  # the reused connection had gone (a restart): a fresh one
                    return self._exchange(self.prefix + path)
            except Exception:  # refused, reset, timed out, not HTTP, too big: no answer
                self._drop()
                return None
            finally:
                if self._closed:
                    self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()

    def _exchange(self, target: str) -> tuple[int, bytes]:
        conn = self._conn
        if conn is None:
            conn = self._conn = http.client.HTTPConnection(
                self.host, self.port, timeout=self.timeout_s
            )
        if conn.sock is None:  # new, or closed after a `Connection: close` answer
            conn.connect()
            self.connects += 1
        conn.request("GET", target, headers=self._headers)
        resp = conn.getresponse()
        if resp.length is not None:  # Content-Length: a short body raises IncompleteRead
            if resp.length > MAX_BYTES:
                raise ValueError("answer too large")
            return resp.status, resp.read()
        body = resp.read(MAX_BYTES + 1)  # framed by chunks or by the close
        if len(body) > MAX_BYTES or (not resp.isclosed() and resp.read(1)):
            raise ValueError("answer too large")
        return resp.status, body
