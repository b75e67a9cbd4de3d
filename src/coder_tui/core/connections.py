"""How coder-tui's HTTP clients talk to llama-server: no connection is left open while idle.

Owns ``NO_IDLE_CONNECTIONS`` and ``server_http``, the ``httpx.AsyncClient`` that every caller of
llama-server uses (chat, readiness and attach probes, fleet remotes, export, tune). llama-server
(its cpp-httplib 0.59, ``detail::keep_alive``) checks an idle kept-alive connection every 10 ms
for up to 5 s: one of its threads wakes 100 times a second for each idle connection, and while
every core decodes, each of those wakes stalls the model's threads at their next barrier. So a
connection is closed as soon as its answer has been read (``max_keepalive_connections=0``); a new
loopback connection costs this process about 0.1 ms. The metrics sampler's own standard-library
connection follows the same rule (``metrics.poll_connection``).

The clients also share one TLS context (``shared_tls``): httpx builds a new one per client,
loading the whole certificate bundle (about 14 ms of CPU on the 2-core VM), and the chat makes a
client per reply.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import certifi
import httpx

NO_IDLE_CONNECTIONS = httpx.Limits(max_keepalive_connections=0)
"""No connection waits in the pool between requests (see the module docstring)."""


@functools.cache
def shared_tls() -> ssl.SSLContext:
    """The TLS context every client shares: certifi's bundle, as httpx's own default."""
    return ssl.create_default_context(cafile=certifi.where())


def server_http(*, trust_env: bool = False, **kwargs: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for llama-server: no idle connections, no proxy from the
    environment unless ``trust_env`` (then httpx's own TLS set-up, which reads the environment's
    certificate settings, too). A caller's ``transport`` (tests) brings its own pool."""
    if not trust_env:
        kwargs.setdefault("verify", shared_tls())
    return httpx.AsyncClient(limits=NO_IDLE_CONNECTIONS, trust_env=trust_env, **kwargs)
