"""The httpx clients of llama-server: no idle connection kept, one TLS context shared."""

from __future__ import annotations

from coder_tui.core.connections import NO_IDLE_CONNECTIONS, server_http, shared_tls


async def test_server_clients_close_idle_connections_and_share_one_tls_context() -> None:
    assert NO_IDLE_CONNECTIONS.max_keepalive_connections == 0
    async with server_http() as a, server_http(base_url="https://remote:8080") as b:
        contexts = {id(c._transport._pool._ssl_context) for c in (a, b)}  # type: ignore[attr-defined]
        assert contexts == {id(shared_tls())}
        assert a._transport._pool._max_keepalive_connections == 0  # type: ignore[attr-defined]
