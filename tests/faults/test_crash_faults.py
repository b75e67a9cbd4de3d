"""Crashes with a reason: the server dies loading or while ready, and the user reads why.

The reason comes from the exit status and the last log lines (``core/server/exitreason.py``); the
first line of ``StartFailed`` is what the status bar shows, ``llama-server <reason>`` the notice of
a crash after ready. The log file keeps the server's own words.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from coder_tui.core.server.events import Exited, ServerEvent
from coder_tui.core.server.ports import free_port
from coder_tui.core.server.process import StartFailed
from faults.conftest import Env, Fault
from faults.helpers import manager, profile

LOAD_FAILURES = [
    pytest.param(
        "oom_load",
        "cudaMalloc failed: out of memory",
        "llama-server (p) exited with code 1: ran out of GPU memory (CUDA)",
        id="cuda-oom",
    ),
    pytest.param(
        "missing_file",
        "No such file or directory",
        "llama-server (p) exited with code 1: cannot open the model file model.gguf "
        "(no such file or directory)",
        id="missing-file",
    ),
    pytest.param(
        "bad_flag",
        "invalid argument: --bogus-flag",
        "llama-server (p) exited with code 1: rejected a command-line option",
        id="bad-flag",
    ),
    pytest.param(
        "crash_load",
        "error loading model",
        "llama-server (p) exited with code 1: failed to load the model",
        id="load-error",
    ),
]


@pytest.mark.parametrize(("mode", "logged", "expected"), LOAD_FAILURES)
async def test_crash_while_loading(
    fault: Fault, env: Env, tmp_path: Path, mode: str, logged: str, expected: str
) -> None:
    mgr = manager(env.binary, free_port(), tmp_path, ready_timeout_s=30.0)
    seen: list[ServerEvent] = []
    mgr.add_listener(seen.append)
    with pytest.raises(StartFailed) as info:
        await mgr.start(profile(env.model, mode))
    fault.no_orphans([e.pid for e in seen if isinstance(e, Exited)], env.model)
    fault.nothing_lost(kept={next((tmp_path / "logs").glob("*.log")): logged})
    fault.says(str(info.value).splitlines()[0], expected)


async def test_killed_by_signal_while_ready(fault: Fault, env: Env, tmp_path: Path) -> None:
    mgr = manager(env.binary, free_port(), tmp_path)
    exited: asyncio.Queue[Exited] = asyncio.Queue()
    mgr.add_listener(lambda e: exited.put_nowait(e) if isinstance(e, Exited) else None)
    ready = await mgr.start(profile(env.model, "crash_ready", FAKE_CRASH_AFTER_S="0.5"))
    event = await asyncio.wait_for(exited.get(), 10)
    assert not event.expected and event.signal == 11
    fault.no_orphans([ready.pid], env.model)
    fault.nothing_lost(kept={next((tmp_path / "logs").glob("*.log")): "fake: crashing now"})
    fault.says(
        f"llama-server {event.reason}",
        "llama-server was killed by SIGSEGV (a crash inside llama-server)",
    )
