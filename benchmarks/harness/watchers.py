"""Watchers kept for a whole run and stopped between their turns, as Ctrl+Z stops them.

Each watcher (coder-tui on its dashboard, coder-tui chatting, nvitop) is started once, before the
first round. Between its turns it is stopped with SIGTSTP at a moment when it holds no connection
to the server (one left open while stopped would make llama-server wake every 10 ms for 5 s), and
resumed with SIGCONT ``RESUME_S`` before its request. A stopped process takes no CPU and wakes no
one, so the other arms, "nothing watching" included, run with nothing watching, and no round has
a start or a teardown in it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import psutil

from harness.terminal import Terminal, app_quit

RESUME_S = 2.0
"""From a watcher's SIGCONT to its request: it draws its screen again (Textual and curses redraw
it whole) and its samplers settle at their rates."""

Starter = Callable[[], Awaitable[Terminal]]
"""Starts one watcher and returns once it is up (on its screen, settled)."""


def _state(pid: int) -> str:
    """The process's state letter (``T``: stopped), or ``X`` once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "X"


def _talks_to(pid: int, port: int) -> bool:
    """Whether ``pid`` holds an open TCP connection to ``port`` (on this host)."""
    return any(
        c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
        for c in psutil.Process(pid).net_connections(kind="tcp")
    )


async def pause(watcher: Terminal, port: int) -> None:
    """Stop ``watcher`` as Ctrl+Z does (SIGTSTP: Textual and curses leave the screen, then stop),
    at a moment when it holds no connection to the server on ``port``."""
    pid = watcher.proc.pid
    for _ in range(100):
        os.kill(pid, signal.SIGTSTP)
        end = time.monotonic() + 4
        while _state(pid) != "T":
            if time.monotonic() > end - 2:  # a program that ignores Ctrl+Z: stopped outright
                os.kill(pid, signal.SIGSTOP)
            if time.monotonic() > end or watcher.proc.poll() is not None:
                raise RuntimeError(f"{watcher.argv[0]} did not stop: {watcher.screen_text()!r}")
            await asyncio.sleep(0.01)
        if not _talks_to(pid, port):
            return
        os.kill(pid, signal.SIGCONT)  # in the middle of a request: let it end
        await asyncio.sleep(0.05)
    raise RuntimeError("the watcher never let go of its connection to the server")


class Seats:
    """One watcher of each kind, started by ``open`` and kept until ``close``; ``take`` resumes
    one for its turn, ``leave`` stops it again."""

    def __init__(self, url: str, starters: dict[str, Starter]) -> None:
        self.url = url
        self.port = int(url.rsplit(":", 1)[1].split("/")[0])
        self.starters = starters
        self._running: dict[str, Terminal] = {}
        self._seen: dict[str, int] = {}

    async def open(self) -> None:
        """Every watcher started, then stopped until its turn."""
        for kind, start in self.starters.items():
            self._running[kind] = await start()
            await pause(self._running[kind], self.port)

    async def take(self, kind: str) -> Terminal:
        """The watcher of ``kind``, running and settled."""
        watcher = self._running[kind]
        self._seen[kind] = watcher.seen
        os.kill(watcher.proc.pid, signal.SIGCONT)
        await asyncio.sleep(RESUME_S)
        if watcher.proc.poll() is not None:
            raise RuntimeError(f"{kind} exited: {watcher.screen_text()!r}")
        return watcher

    async def leave(self, kind: str) -> None:
        """The turn of ``kind`` is over: stopped. It must have drawn since its turn began (its
        redraw on resume): one that did not is not watching."""
        watcher = self._running[kind]
        await pause(watcher, self.port)
        if watcher.seen == self._seen[kind]:
            raise RuntimeError(f"{kind} drew nothing in its turn: not watching")

    async def close(self) -> None:
        """Every watcher resumed and quit as a user quits it (``app_quit``)."""
        for watcher in self._running.values():
            if watcher.proc.poll() is None:
                os.kill(watcher.proc.pid, signal.SIGCONT)
        await asyncio.gather(*(app_quit(w) for w in self._running.values()))
        self._running.clear()
