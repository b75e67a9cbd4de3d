"""The fleet poller against scripted servers (httpx MockTransport): healthy, down, loading, garbage."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from coder_tui.core.metrics.fleet import FleetPoller, FleetRow, Remote
from coder_tui.core.metrics.types import ServerPhase

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "metrics"
PROPS = {
    "default_generation_settings": {"n_ctx": 4096, "params": {}},
    "total_slots": 1,
    "model_alias": "demo-small-Q4_K_M.gguf",
    "model_path": "/models/demo-small-Q4_K_M.gguf",
    "build_info": "b1-abc",
}
EXPORTER = (
    "# TYPE coder_tui_gpu_available gauge\ncoder_tui_gpu_available 1.0\n"
    "# TYPE coder_tui_gpu_memory_used_bytes gauge\n"
    'coder_tui_gpu_memory_used_bytes{gpu="0",gpu_name="H100"} 100.0\n'
    'coder_tui_gpu_memory_used_bytes{gpu="1",gpu_name="H100"} 50.0\n'
)

Handler = Callable[[httpx.Request], httpx.Response]


def healthy(request: httpx.Request) -> httpx.Response:
    """A llama-server generating (fixtures from the real one)."""
    path = request.url.path
    if path == "/health":
        return httpx.Response(200, json={"status": "ok"})
    if path == "/props":
        return httpx.Response(200, json=PROPS)
    if path == "/metrics":
        if request.url.port == 9464:
            return httpx.Response(200, text=EXPORTER)
        return httpx.Response(200, text=(FIXTURES / "metrics_generating_a.txt").read_text())
    if path == "/slots":
        return httpx.Response(200, text=(FIXTURES / "slots_generating_a.json").read_text())
    return httpx.Response(404)


def garbage(request: httpx.Request) -> httpx.Response:
    """Something that answers 200 to everything with bytes that mean nothing."""
    return httpx.Response(200, content=b"\x00\xff<html>not a llama-server</html>")


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def routed(routes: dict[str, Handler]) -> httpx.MockTransport:
    return httpx.MockTransport(lambda req: routes[req.url.host](req))


async def _poll(routes: dict[str, Handler], remotes: list[Remote], **kw: object) -> list[FleetRow]:
    poller = FleetPoller(remotes, transport=routed(routes), **kw)  # type: ignore[arg-type]
    try:
        return list(await poller.poll_once())
    finally:
        await poller.aclose()


async def test_healthy_server_row_has_model_ctx_and_kv_fill() -> None:
    [row] = await _poll({"a": healthy}, [Remote("box-a", "http://a:8084")])
    assert row.up and row.error is None and row.last_error is None
    assert row.model == "demo-small-Q4_K_M.gguf" and row.n_ctx == 4096 and row.total_slots == 1
    assert row.model_path == "/models/demo-small-Q4_K_M.gguf"
    assert row.phase is ServerPhase.GENERATING
    assert row.kv_fill_ratio is not None and 0 < row.kv_fill_ratio <= 1
    assert row.gpu_available is None  # no exporter configured


async def test_down_server_is_a_row_not_an_exception() -> None:
    rows = await _poll(
        {"a": healthy, "b": refused},
        [Remote("box-a", "http://a:8084"), Remote("box-b", "http://b:8084")],
    )
    assert [r.name for r in rows] == ["box-a", "box-b"]
    down = rows[1]
    assert not down.up and down.phase is ServerPhase.DOWN
    assert down.error is not None and "connection refused" in down.error
    assert down.last_error == down.error and down.generation_tokens_per_s is None
    assert rows[0].up


async def test_garbage_answers_give_an_error_not_a_crash() -> None:
    [row] = await _poll({"g": garbage}, [Remote("odd", "http://g:1")])
    assert row.up  # /health said 200
    assert row.error == "/props: not JSON"
    assert row.model is None and row.n_ctx is None and row.kv_fill_ratio is None


async def test_wrong_shapes_and_status_codes() -> None:
    def shapes(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/props":
            return httpx.Response(200, json=["a", "list"])
        if request.url.path == "/slots":
            return httpx.Response(200, json={"not": "a list"})
        return httpx.Response(200, text="llamacpp:garbage oops\n")

    def teapot(request: httpx.Request) -> httpx.Response:
        return httpx.Response(418)

    rows = await _poll(
        {"s": shapes, "t": teapot}, [Remote("s", "http://s"), Remote("t", "http://t")]
    )
    assert rows[0].up and rows[0].error == "/props: not a JSON object"
    assert not rows[1].up and rows[1].error == "/health answered HTTP 418"
    assert rows[1].phase is ServerPhase.DOWN


async def test_loading_server_is_up_and_loading() -> None:
    def loading(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/props":
            return httpx.Response(200, json=PROPS)
        return httpx.Response(503, json={"error": {"message": "Loading model"}})

    [row] = await _poll({"l": loading}, [Remote("l", "http://l")])
    assert row.up and row.phase is ServerPhase.LOADING and row.error is None


async def test_last_error_is_kept_after_recovery_and_api_key_is_sent() -> None:
    seen: list[str | None] = []
    state = {"down": True}

    def flaky(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        if state["down"]:
            raise httpx.ReadTimeout("timed out", request=request)
        return healthy(request)

    remote = Remote("f", "http://f:8084", api_key_env="F_KEY")
    poller = FleetPoller([remote], transport=routed({"f": flaky}), env={"F_KEY": "sekrit"})
    try:
        [first] = await poller.poll_once()
        state["down"] = False
        [second] = await poller.poll_once()
    finally:
        await poller.aclose()
    assert not first.up and first.error is not None and "timed out" in first.error
    assert second.up and second.error is None
    assert second.last_error == first.error and second.last_error_at_s == first.checked_at_s
    assert second.model == "demo-small-Q4_K_M.gguf"  # /props read again once it came back
    assert set(seen) == {"Bearer sekrit"}


async def test_missing_api_key_env_is_reported() -> None:
    remote = Remote("k", "http://k:8084", api_key_env="NOPE_KEY")
    poller = FleetPoller([remote], transport=routed({"k": healthy}), env={})
    try:
        [row] = await poller.poll_once()
    finally:
        await poller.aclose()
    assert row.up and row.error == "$NOPE_KEY is not set"


async def test_gpu_numbers_from_the_remote_exporter() -> None:
    remote = Remote("a", "http://a:8084", exporter_url="http://a:9464/metrics")
    [row] = await _poll({"a": healthy}, [remote])
    assert row.gpu_available is True and row.gpu_memory_used_bytes == 150.0
    assert row.gpu_memory_total_bytes is None


async def test_run_yields_ticks_and_closes() -> None:
    poller = FleetPoller(
        [Remote("a", "http://a")], interval_s=0.01, transport=routed({"a": healthy})
    )
    ticks = 0
    gen = poller.run()
    async for rows in gen:
        ticks += 1
        assert rows[0].up
        if ticks == 3:
            break
    await gen.aclose()
    assert poller._states == {}


@pytest.mark.parametrize("payload", ["", "{", "null", json.dumps({"model_alias": 5})])
async def test_props_payloads_never_raise(payload: str) -> None:
    def props(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/props":
            return httpx.Response(200, text=payload)
        return healthy(request)

    [row] = await _poll({"p": props}, [Remote("p", "http://p")])
    assert row.up and row.model is None
