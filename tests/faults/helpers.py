"""Small helpers shared by the fault scenarios: a line reader with deadlines, configs, managers."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from coder_tui.core.config.loader import Profile, ServerSettings
from coder_tui.core.server.process import ServerManager

FAULTS = Path(__file__).resolve().parent
DRIVER = FAULTS / "driver.py"
OWNER = FAULTS.parent / "fakes" / "owner_process.py"


class Lines:
    """Reads a pipe in a thread so a test can wait for a line with a deadline."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait(self, prefix: str, timeout_s: float) -> str:
        """The next line starting with ``prefix``; AssertionError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._queue.get(timeout=max(left, 0.01))
            except queue.Empty:
                raise AssertionError(f"no line {prefix!r} in {timeout_s} s: {self.seen}") from None
            if line is None:
                raise AssertionError(f"stream ended before {prefix!r}: {self.seen}")
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def rest(self, timeout_s: float = 5.0) -> list[str]:
        """Every line until the stream ends (or ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                break
            self.seen.append(line)
        return self.seen


def spawn(argv: list[str], **env: str) -> tuple[subprocess.Popen[str], Lines]:
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **env},
    )
    assert proc.stdout is not None
    return proc, Lines(proc.stdout)


def stop(proc: subprocess.Popen[str]) -> None:
    """Kill ``proc`` if it still runs, and reap it."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def write_config(path: Path, binary: Path, port: int, model: Path, extra: str = "") -> Path:
    path.write_text(
        f"[server]\nbinary = {str(binary)!r}\nport = {port}\nready_timeout_s = 20\n"
        f"stop_grace_s = 3\n{extra}\n[profiles.p]\nmodel = {str(model)!r}\n"
    )
    return path


def manager(
    binary: Path, port: int, tmp: Path, *, run_dir: Path | None = None, **settings: object
) -> ServerManager:
    base: dict[str, object] = {"ready_timeout_s": 10.0, "stop_grace_s": 3.0}
    base.update(settings)
    return ServerManager(
        ServerSettings(binary=binary, port=port, **base),  # type: ignore[arg-type]
        log_dir=tmp / "logs",
        run_dir=run_dir,
    )


def profile(model: Path, mode: str = "normal", **env: str) -> Profile:
    return Profile(name="p", model=model, env={"FAKE_MODE": mode, "FAKE_LOAD_S": "0.2", **env})


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


# -- hostile text -----------------------------------------------------------------------------
HOSTILE_PARTS = (
    "\x1b]52;c;aGFja2Vk\x07",  # OSC 52: write the clipboard
    "\x1b[2J\x1b[H",  # clear the screen
    "\x1b]0;pwned\x07",  # set the window title
    "\x9b31m",  # C1 CSI
    "\u202egnp.exe",  # right-to-left override
    "\u2066\u2067\u2068\u2069",  # bidi isolates
    "\u200b\ufeff\u2028",  # zero-width space, BOM, line separator
    "a\rb",  # carriage return: overwrite the line
    "\x08\x7f",  # (no NUL: no path, environment variable or argument can hold one)
)
HOSTILE = "evil" + "".join(HOSTILE_PARTS) + "end"
"""One string holding every kind of hostile character; every output path is walked with it."""
HOSTILE_SHOWN = (
    "evil]52;c;aGFja2Vk[2J[H]0;pwned31m⟨U+202E⟩gnp.exe⟨U+2066⟩⟨U+2067⟩⟨U+2068⟩⟨U+2069⟩"
    "⟨U+200B⟩⟨U+FEFF⟩⟨U+2028⟩a⟨U+000D⟩bend"
)
"""``HOSTILE`` on one line as every path must show it: escapes gone, the rest visible."""


def tiny_gguf(path: Path, name: str | None = None) -> Path:
    """The smallest GGUF file whose header walks (no tensors), with ``general.name`` if given."""
    import struct

    kvs = b""
    if name is not None:
        key, value = b"general.name", name.encode()
        kvs = struct.pack("<Q", len(key)) + key + struct.pack("<IQ", 8, len(value)) + value
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1 if kvs else 0) + kvs)
    return path


def hostile_chars(text: str) -> list[str]:
    """The characters in ``text`` that a terminal would obey or hide (newline and tab allowed)."""
    import unicodedata

    bad = []
    for ch in text:
        if ch in "\n\t\u200c\u200d":
            continue
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            bad.append(f"U+{ord(ch):04X}")
    return bad
