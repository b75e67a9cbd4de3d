"""The real llama-server with the generated demo model: start, ready, chat, metrics, stop, reaped."""

from __future__ import annotations

import httpx
import psutil

from coder_tui.core.config.loader import Config
from coder_tui.core.server.events import ServerState
from coder_tui.core.server.process import ServerManager


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_each_quant_starts_answers_and_stops(demo_config: Config, tmp_path) -> None:  # type: ignore[no-untyped-def]
    mgr = ServerManager(demo_config.server, log_dir=tmp_path / "logs")
    for name in ("q8_0", "q4_k_m", "iq2_xxs"):
        ready = await mgr.start(demo_config.profile(name))
        assert ready.pid is not None and ready.load_time_s > 0
        assert mgr.load_time_s == ready.load_time_s
        assert mgr.version and "version" in mgr.version
        async with httpx.AsyncClient(base_url=mgr.url, timeout=60, trust_env=False) as client:
            resp = await client.post(
                "/v1/chat/completions",
                json={
                    "messages": [{"role": "user", "content": "write a function"}],
                    "max_tokens": 16,
                    "temperature": 0,
                },
            )
            assert resp.status_code == 200
            body = resp.json()
            assert (
                body["choices"][0]["message"]["content"].isprintable()
                or body["choices"][0]["message"]["content"].strip().isprintable()
            )
            assert body["usage"]["completion_tokens"] >= 1
            metrics = await client.get("/metrics")
            assert metrics.status_code == 200 and "llamacpp:" in metrics.text
        await mgr.stop()
        assert mgr.state is ServerState.STOPPED
        assert _gone(ready.pid)
    assert mgr.log_path is not None and mgr.log_path.read_text()


async def test_missing_model_fails_with_reason(demo_config: Config, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    import pytest

    from coder_tui.core.server.process import StartFailed

    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf at all" * 100)
    profile = replace(demo_config.profile("q4_k_m"), model=bad)
    mgr = ServerManager(demo_config.server, log_dir=tmp_path / "logs")
    with pytest.raises(StartFailed) as info:
        await mgr.start(profile)
    assert "exited with code" in str(info.value)
    assert mgr.state is ServerState.CRASHED
