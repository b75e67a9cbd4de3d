"""llama-server's own account of a placement: start it, read its buffer lines, stop it.

Owns ``server_buffers``: runs ``llama-server ARGS -lv 4 --no-warmup`` on a free loopback port
until it has logged its compute buffer and is listening (or exits, or the timeout passes), stops
it, and returns the load log's buffers (``gguf/buffer_log.py``) with the log itself. This is how
the memory model is checked term by term against the real thing (tests, the GPU scripts) without
generating a token. A model of tens of GB loads as a sparse memory map in a few seconds when its
weights are zeros (``demo/shape_model.py``). ``llama-fit-params``, llama.cpp's other answer, is
``llama_fit.py``'s.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from coder_tui.core.gguf.buffer_log import BufferLog, parse_buffers
from coder_tui.core.server.ports import free_port

_DONE = ("listening on", "all slots are idle", "main loop")


@dataclass(frozen=True)
class ServerBuffers:
    """What one load logged: ``buffers`` (empty when it failed) and the log text."""

    buffers: BufferLog
    log: str
    exit_code: int | None
    """``None`` when the server was still running and was stopped."""
    elapsed_s: float

    @property
    def ok(self) -> bool:
        return not self.buffers.empty and any(k[1] == "compute" for k in self.buffers.mib)


def server_buffers(
    binary: Path,
    model: Path,
    args: Sequence[str],
    *,
    timeout_s: float = 120.0,
    env: dict[str, str] | None = None,
) -> ServerBuffers:
    """Load ``model`` in llama-server with ``args`` and return what it allocated."""
    port = free_port()
    argv = [str(binary), "-m", str(model), *args]
    argv += ["--host", "127.0.0.1", "--port", str(port), "-lv", "4", "--no-warmup"]
    start = time.monotonic()
    with tempfile.TemporaryFile(mode="w+b") as log:
        proc = subprocess.Popen(  # noqa: S603 (argv list, no shell; the binary from find_tool)
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        text = ""
        try:
            while time.monotonic() - start < timeout_s:
                time.sleep(0.2)
                log.seek(0)
                text = log.read().decode(errors="replace")
                after = text.rpartition("compute buffer size")[2]
                if proc.poll() is not None or any(d in after for d in _DONE):
                    break
        finally:
            code = proc.poll()
            if code is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            log.seek(0)
            text = log.read().decode(errors="replace")
    return ServerBuffers(parse_buffers(text), text, code, time.monotonic() - start)
