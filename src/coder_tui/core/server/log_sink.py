"""Where llama-server's output lines go, with every amount bounded: line length, file size, rate.

Owns ``LogSink``: one line in (bytes as read from the pipe), and out: a sanitised, redacted line
kept in a ring of the last lines, written to a log file that rotates at ``file_cap_bytes`` (one
older file, ``NAME.log.1``, is kept), and passed on to listeners at most ``emit_per_s`` lines a
second. Lines beyond that rate are still kept and written; once a second the listeners get one
line saying how many were not shown and at what rate. A server that writes 5 KB lines without
pause therefore costs the UI a bounded number of lines a second and the disk at most two files.
Spawning, reading the pipes and stopping are ``process.py``'s.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO

from coder_tui.core.sanitize import decode_output, sanitize_line

LINE_CAP_CHARS = 4096
"""Longer lines are cut (llama-server's longest real lines, prompts echoed at -v, are shorter)."""
FILE_CAP_BYTES = 8 << 20
EMIT_PER_S = 100


def cut_line(text: str, cap: int = LINE_CAP_CHARS) -> str:
    """``text`` cut to ``cap`` characters, saying how much was cut."""
    if len(text) <= cap:
        return text
    return f"{text[:cap]}… [{len(text) - cap} characters cut]"


class LogSink:
    """Bounds one server run's log: ring of lines, rotating file, rate of lines passed on."""

    def __init__(
        self,
        ring: deque[str],
        emit: Callable[[str, str], None],
        redact: Callable[[str], str],
        *,
        file_cap_bytes: int = FILE_CAP_BYTES,
        emit_per_s: int = EMIT_PER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ring = ring
        self._emit = emit
        self._redact = redact
        self.file_cap_bytes = file_cap_bytes
        self.emit_per_s = emit_per_s
        self._clock = clock
        self.path: Path | None = None
        self._file: IO[str] | None = None
        self._written = 0
        self._window_start = clock()
        self._shown = 0
        self.dropped = 0
        """Lines not passed on in the current one-second window."""
        self.dropped_total = 0

    # -- file ------------------------------------------------------------------------------------
    def open(self, path: Path) -> None:
        self.close()
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._file = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
            self.path = path
            self._written = self._file.tell()
        except OSError:
            self.path = None
            self._file = None

    def close(self) -> None:
        self.flush_dropped(force=True)
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    def _write(self, text: str) -> None:
        if self._file is None:
            return
        data = text + "\n"
        size = len(data.encode("utf-8", "replace"))
        if self._written + size > self.file_cap_bytes and self.path is not None:
            self._rotate(self.path)
            if self._file is None:
                return
        with contextlib.suppress(OSError, ValueError):
            self._file.write(data)
            self._written += size

    def _rotate(self, path: Path) -> None:
        with contextlib.suppress(OSError):
            assert self._file is not None
            self._file.close()
        self._file = None
        try:
            os.replace(path, path.with_name(path.name + ".1"))
            self._file = open(path, "w", encoding="utf-8", buffering=1)  # noqa: SIM115
            self._written = 0
        except OSError:
            self._file = None

    # -- lines -----------------------------------------------------------------------------------
    def line(self, raw: bytes | str, source: str = "stdout") -> str:
        """Take one line as read from the pipe ``source``; returns the text kept."""
        text = decode_output(raw).rstrip("\r\n").expandtabs(8)  # tabs align, they hide nothing
        text = sanitize_line(cut_line(self._redact(text)))
        self.ring.append(text)
        self._write(text)
        self.flush_dropped()
        if self._shown < self.emit_per_s:
            self._shown += 1
            self._emit(text, source)
        else:
            self.dropped += 1
            self.dropped_total += 1
        return text

    def flush_dropped(self, *, force: bool = False) -> None:
        """At the end of a one-second window, say how many lines were not passed on."""
        now = self._clock()
        elapsed = now - self._window_start
        if elapsed < 1.0 and not force:
            return
        if self.dropped:
            rate = (self.dropped + self._shown) / max(elapsed, 1e-3)
            where = f"; see {self.path}" if self.path is not None else ""
            self._emit(
                f"[coder-tui] {self.dropped} log lines not shown "
                f"(the server wrote {rate:,.0f} lines/s){where}",
                "coder-tui",
            )
        self._window_start = now
        self._shown = 0
        self.dropped = 0

    def flush(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError, ValueError):
                self._file.flush()
