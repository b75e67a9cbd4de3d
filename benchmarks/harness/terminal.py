"""coder-tui (or nvitop) in a pseudo-terminal, as a user runs it, and what the guards type into it.

``Terminal`` runs a program on a pseudo-terminal of 160x50 (``TERM=xterm-256color``, Textual's
real driver), reads and drops its screen output on a thread so it never blocks, and notes when
given markers first appear in that output (the startup guard's first frame). ``AppHome`` is a
coder-tui home (config, history database, XDG folders) kept for a whole run, as a user's is, and
reads the replies coder-tui stored. The helpers below wait for its first frame, open the
dashboard, type a prompt and quit, all with keys as xterm sends them.
"""

from __future__ import annotations

import asyncio
import fcntl
import importlib.util
import os
import pty
import re
import shutil
import sqlite3
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import tomli_w

from harness.server import PROMPT, tomllib

F4, CTRL_N, CTRL_Q, ENTER = b"\x1bOS", b"\x0e", b"\x11", b"\r"
"""Keys as xterm sends them."""

APP_START_S = 2.0
"""From coder-tui's first frame (about 0.5 s after its start) to its first key."""


class Terminal:
    """``argv`` on a pseudo-terminal of ``size`` (columns, rows); ``markers``: byte strings whose
    first appearance in the output is timed (``marked_s``) from the spawn; ``quit_key``: how a
    user quits it (``app_quit``)."""

    def __init__(
        self,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        *,
        size: tuple[int, int] = (160, 50),
        markers: Sequence[bytes] = (),
        quit_key: bytes | None = None,
    ) -> None:
        self.argv = list(argv)
        self.quit_key = quit_key
        """The key that quits the program as a user would (None: it is terminated)."""
        self.master, slave = pty.openpty()
        cols, rows = size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = {**os.environ, **(env or {}), "TERM": "xterm-256color"}
        self.seen = 0
        """Bytes drawn so far."""
        self.tail = b""
        """The last 8 KiB drawn (for an error message)."""
        self._pending = {m: 0.0 for m in markers}
        self.marks: dict[bytes, float] = {}
        """Seconds from the spawn to each marker's first appearance."""
        self.all_marked = threading.Event()
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            self.argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        os.close(slave)
        if not markers:
            self.all_marked.set()
        threading.Thread(target=self._drain, daemon=True).start()

    def press(self, keys: bytes) -> None:
        """Type ``keys`` as the terminal would send them."""
        os.write(self.master, keys)

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            now = time.perf_counter()
            window = self.tail[-64:] + chunk
            self.seen += len(chunk)
            self.tail = (self.tail + chunk)[-8192:]
            for marker in [m for m in self._pending if m in window]:
                del self._pending[marker]
                self.marks[marker] = now - self.t0
                if not self._pending:
                    self.all_marked.set()

    def marked_s(self, timeout_s: float = 20.0) -> float:
        """Seconds from the spawn until every marker had appeared (NaN if not in time)."""
        if not self.all_marked.wait(timeout_s):
            return float("nan")
        return max(self.marks.values(), default=0.0)

    def screen_text(self) -> str:
        """What the last output said, escape sequences left out."""
        text = re.sub(
            rb"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|.)", b" ", self.tail
        )
        return " ".join(text.decode("utf-8", "replace").split())[-600:]

    def close(self) -> None:
        """Terminated (killed after 5 s), and the terminal closed."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        os.close(self.master)


def nvitop_argv() -> list[str] | None:
    """How to start nvitop here (its module, or its script on PATH), or None."""
    if importlib.util.find_spec("nvitop") is not None:
        return [sys.executable, "-m", "nvitop"]
    found = shutil.which("nvitop")
    return [found] if found else None


Reply = tuple[int, str, float | None]
"""A stored assistant message: (id, status, decode tokens/s)."""


class AppHome:
    """A coder-tui home for a whole run: ``config_path`` copied in (``chat``: ``[chat]`` keys
    set on the way), XDG folders of its own (``env``: more variables for its processes, e.g. a
    ``PYTHONPATH`` that runs another checkout's coder-tui), its history database read back
    (read-only) for the replies coder-tui stored."""

    def __init__(
        self,
        root: Path,
        config_path: Path,
        *,
        chat: dict[str, object] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        doc = tomllib.loads(config_path.read_text(encoding="utf-8"))
        doc.setdefault("chat", {}).update(chat or {})
        self.config = root / "config.toml"
        self.config.write_text(tomli_w.dumps(doc), encoding="utf-8")
        self.env = {f"XDG_{d}_HOME": str(root / d.lower()) for d in ("DATA", "CONFIG", "STATE")}
        self.env["XDG_CACHE_HOME"] = str(root / "cache")
        self.env.update(env or {})
        self.history_db = root / "data" / "coder-tui" / "history.sqlite3"

    def start(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        size: tuple[int, int] = (160, 50),
        markers: Sequence[bytes] = (),
    ) -> Terminal:
        """``coder-tui --config HOME/config.toml ARGS`` in a terminal (``env``: more variables;
        ``size`` and ``markers`` as ``Terminal`` takes them)."""
        argv = [sys.executable, "-m", "coder_tui", "--config", str(self.config), *args]
        env = {**self.env, **(env or {})}
        return Terminal(argv, env, size=size, markers=markers, quit_key=CTRL_Q)

    def attach(self, url: str, env: dict[str, str] | None = None) -> Terminal:
        """``coder-tui --attach URL`` in a terminal of 160x50."""
        return self.start("--attach", url, env=env)

    def _newest(self, sql: str) -> tuple[object, ...] | None:
        if not self.history_db.exists():
            return None
        con = sqlite3.connect(f"file:{self.history_db}?mode=ro", uri=True, timeout=5)
        try:
            row = con.execute(sql).fetchone()
            return tuple(row) if row else None
        finally:
            con.close()

    def last_reply(self) -> Reply | None:
        """The newest assistant message."""
        row = self._newest(
            "SELECT id, status, predicted_per_second FROM messages "
            "WHERE role = 'assistant' ORDER BY id DESC LIMIT 1"
        )
        if row is None:
            return None
        speed = row[2]
        return int(str(row[0])), str(row[1]), None if speed is None else float(str(speed))

    def reply_done_after(self, before: Reply | None) -> Reply | None:
        """The newest reply if it is newer than ``before`` (a ``last_reply``) and has ended."""
        reply = self.last_reply()
        if reply is None or (before is not None and reply[0] == before[0]):
            return None
        return reply if reply[1] != "streaming" else None

    def last_run_quiet(self) -> bool:
        """Whether the newest reply was asked for whole (``decode_runs``, as the app recorded)."""
        row = self._newest("SELECT quiet FROM decode_runs ORDER BY at DESC LIMIT 1")
        return bool(row and row[0])


async def app_up(app: Terminal) -> None:
    """Until coder-tui has drawn its screen (then ``APP_START_S`` more), or an error."""
    end = time.monotonic() + 20
    while app.seen < 4000 and app.proc.poll() is None and time.monotonic() < end:
        await asyncio.sleep(0.25)
    await asyncio.sleep(APP_START_S)
    if app.proc.poll() is not None or app.seen < 4000:
        state = "running" if app.proc.poll() is None else f"exited with {app.proc.returncode}"
        raise RuntimeError(f"coder-tui {state}, drew {app.seen} bytes: {app.screen_text()!r}")


async def app_quit(app: Terminal) -> None:
    """Its quit key (coder-tui: Ctrl+Q), as a user leaves; terminated if it has not gone in
    10 s, or at once if it has no quit key (nvitop: Ctrl+Q does not quit it)."""
    if app.quit_key is not None and app.proc.poll() is None:
        app.press(app.quit_key)
        for _ in range(100):
            if app.proc.poll() is not None:
                break
            await asyncio.sleep(0.1)
    await asyncio.to_thread(app.close)


async def on_dashboard(app: Terminal) -> None:
    """Until coder-tui has drawn its screen, then on its dashboard (F4) for 2 s: its samplers
    settle at their rates."""
    await app_up(app)
    app.press(F4)
    await asyncio.sleep(2.0)


async def type_prompt(app: Terminal) -> None:
    """A new conversation (Ctrl+N: the same prompt size every time) and ``PROMPT`` typed into
    coder-tui's prompt, not sent."""
    app.press(CTRL_N)
    await asyncio.sleep(0.5)
    app.press(PROMPT.encode())
    await asyncio.sleep(1.5)
