"""The Prometheus exporter: ``/metrics`` over HTTP, fed the snapshots a sampler already takes.

Owns ``PrometheusExporter`` (a stoppable HTTP server with its own registry, loopback by default,
on ``BoundedHTTPServer``: a fixed pool of workers and a timeout on every connection) and the
``--listen`` helpers (``parse_listen``, ``check_listen``; what counts as loopback is
``core/security.py``'s ``is_loopback``). What the metrics are, and their names, is
``families``' (re-exported here, so ``coder_tui.core.exporter.http`` is the one import the CLI
and the UI need); sampling is ``metrics.bus``'s. The TUI hands its own snapshots to
``PrometheusExporter.update``: no extra sampling.
"""

from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import HTTPServer
from typing import Any

from prometheus_client.exposition import MetricsHandler, generate_latest
from prometheus_client.registry import CollectorRegistry

from coder_tui.core.errors import UserError
from coder_tui.core.exporter.families import (
    PREFIX,
    ProfileLabels,
    SnapshotCollector,
    quant_of,
    render,
)
from coder_tui.core.metrics.types import MetricsSnapshot
from coder_tui.core.security import is_loopback

WORKERS = 4
"""Threads answering scrapes (one scrape takes about a millisecond)."""
WAITING = 32
"""Connections that may wait for a worker; more are closed at once."""
CONNECTION_TIMEOUT_S = 5.0
"""A client that sends nothing (a half-open connection) is dropped after this."""

DEFAULT_LISTEN = "127.0.0.1:9464"
"""9464: the port Prometheus's default-port list gives OpenTelemetry-style exporters."""

__all__ = [
    "DEFAULT_LISTEN",
    "PREFIX",
    "ProfileLabels",
    "PrometheusExporter",
    "SnapshotCollector",
    "check_listen",
    "parse_listen",
    "quant_of",
    "render",
]


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9464`` for IPv6) as (host, port); ``UserError`` if malformed."""
    host, sep, port_s = text.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_s.isdigit() or not 0 <= int(port_s) <= 65535:
        raise UserError(f"--listen {text!r}: expected HOST:PORT, e.g. {DEFAULT_LISTEN}")
    return host, int(port_s)


def check_listen(host: str, *, allow_remote: bool) -> None:
    """Refuse a non-loopback address unless ``allow_remote``: the metrics name models and paths."""
    if not allow_remote and not is_loopback(host):
        raise UserError(
            f"refusing to serve metrics on {host}, which other machines can reach; "
            "pass --allow-remote to do it anyway (or listen on 127.0.0.1)"
        )


class BoundedHTTPServer(HTTPServer):
    """An HTTP server with a fixed pool of workers, a bound on waiting connections and a timeout
    on each: 1,000 half-open connections cost ``WORKERS`` threads and ``WAITING`` sockets, never
    one thread each (prometheus_client's own server starts a thread per connection)."""

    daemon_threads = True
    request_queue_size = 128  # the listen backlog: a burst must not meet dropped SYNs (1 s each)

    def __init__(self, host: str, port: int, handler: type[MetricsHandler]) -> None:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, sockaddr = infos[0]
        self.address_family = family
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="coder-tui-exporter")
        self._slots = threading.BoundedSemaphore(WORKERS + WAITING)
        super().__init__((str(sockaddr[0]), port), handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # full: the client retries at its next scrape
            return
        try:
            self._pool.submit(self._answer, request, client_address)
        except RuntimeError:  # the pool is shut down: the server is stopping
            self._slots.release()
            self.shutdown_request(request)

    def _answer(self, request: Any, client_address: Any) -> None:
        try:
            request.settimeout(CONNECTION_TIMEOUT_S)
            self.finish_request(request, client_address)
        except (OSError, ValueError):
            pass  # a client that went away or timed out: nothing to report
        finally:
            self.shutdown_request(request)
            self._slots.release()

    def server_close(self) -> None:
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)


class _Handler(MetricsHandler):
    timeout = CONNECTION_TIMEOUT_S  # StreamRequestHandler applies it to the socket


class PrometheusExporter:
    """``/metrics`` over HTTP from its own registry, on a daemon thread; ``stop`` joins it."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9464,
        *,
        collector: SnapshotCollector | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.collector = collector or SnapshotCollector()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The scrape URL (the bound port once started, so port 0 works)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def update(self, snap: MetricsSnapshot, labels: ProfileLabels | None = None) -> None:
        """Serve ``snap`` (the caller's sampler feeds this; nothing samples here)."""
        self.collector.update(snap, labels)

    def render(self) -> str:
        """The exposition text a scrape would get now."""
        return generate_latest(self.registry).decode("utf-8")

    def start(self) -> None:
        """Bind and serve; ``UserError`` when the address is taken or invalid."""
        if self._server is not None:
            return
        handler = type("Handler", (_Handler,), {"registry": self.registry})
        try:
            server = BoundedHTTPServer(self.host, self.port, handler)
        except (OSError, UnicodeError) as exc:
            reason = (getattr(exc, "strerror", None) or str(exc)).lower()
            raise UserError(f"cannot listen on {self.host}:{self.port}: {reason}") from None
        thread = threading.Thread(
            target=server.serve_forever, name="coder-tui-exporter-accept", daemon=True
        )
        thread.start()
        self._server, self._thread = server, thread
        self.port = int(server.server_address[1])

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5.0)

    def __enter__(self) -> PrometheusExporter:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
