"""What watching costs the model: llama-server decode tokens/s with and without coder-tui looking.

The bench demo model (Q4_K_M) is served with its threads on every core (and ``--ignore-eos``),
and each arm runs the same fixed-length generation (384 tokens unless ``--tokens``), interleaved
round by round:
  (a) nothing watching: the request alone;
  (b) coder-tui in a terminal (a pseudo-terminal of 160x50, Textual's real driver, its screen
      output read and dropped), attached to the server, on its dashboard (F4) at default rates,
      while the request runs;
  (c) coder-tui in a terminal, chatting as it runs by default: the prompt is typed into it and it
      sends the request itself and shows the reply. Its home (config, history database) is kept
      from round to round, as a user's is, and starts with one reply (not measured), so each
      measured reply follows one on the same model: a fast one with no idle core makes it a quiet
      reply (``[chat] quiet_above_tps``), asked for whole. The reply's end is read from its
      history database every 0.5 s;
  (d) nvitop in the same kind of terminal, if it is installed (skipped otherwise, and said so);
  (i), (j) with ``--also-in-process``: (b) and (c) inside this process on Textual's headless
      driver (no terminal output, no input thread), as rounds before 2026-11-27 12:00 measured;
  (g) coder-tui chatting in this process with every reply streamed (``quiet_above_tps = 0``),
      drawn at the pace it keeps while no core is idle (``--skip-streamed`` leaves it out);
  (e) with ``--also-stream-only``: the stream of (g) without the app, read by coder-tui's client
      at the same pace, drawn nowhere. Any streaming client pays this: llama-server wakes to send
      each token. (g)/(e) is what drawing costs.
The watchers of (b), (c) and (d) are started once, before the first round, and kept: between
their turns each is stopped as Ctrl+Z stops it (SIGTSTP, at a moment it holds no connection to
the server) and resumed 2 s before its request (``Seats``), so nothing runs during the other
arms and a round has no start or teardown in it. ``--restart-watchers``: each turn starts its
watcher and quits it after (before 2026-11-27 14:00). ``--pin`` binds the server's threads each
to one logical CPU (see ``benchmarks/decode_noise.py``).
Speeds are the server's own ``timings.predicted_per_second``. Each arm is reported as a ratio to
(a) of the same round (median over rounds, with the spread). Targets (issue 10): (b) and (c) at
least 0.98, and below nvitop's cost. Fairness: the order of the arms rotates from round to round
(an arm that follows another one's teardown is not always the same), and each arm starts after a
1 s pause. CPU is reported as a share of one core, from the request to its end: for the arms in a
terminal and (d), the watcher's process; for the in-process arms, this process (the request
included). Each round's line also gives the watcher's wake-ups a second (context switches of all
its threads; per Python thread for the in-process arms) and what the server spent per 1,000
tokens: CPU, waits (voluntary context switches: a thread slept) and preemptions (involuntary ones:
another thread took its core).

    python benchmarks/observer.py [--rounds 5] [--tokens 384]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import proc_counters

from coder_tui.core.config.loader import ChatSettings, Config, load_config
from coder_tui.core.demo.build import prepare_demo
from coder_tui.core.server.ports import free_port
from coder_tui.core.server.process import ServerManager
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui.app import CoderApp
from coder_tui.ui.widgets.prompt import PromptInput

PROMPT = "Write a Python function that parses a CSV file."


SETTLE_S = 1.0


class CpuWindow:
    """The CPU share of one core that this process (or ``pid``) used between ``start`` and
    ``stop``, its threads' wake-ups a second (context switches; for this process also per Python
    thread, by name), and, when ``SERVER_PID`` is set, the server's CPU seconds and context
    switches over the same window."""

    def __init__(self, pid: int | None = None) -> None:
        self.pid = pid
        self.share: float | None = None
        self.wakes_per_s: float | None = None
        self.server: tuple[float, int, int] | None = None
        self.by_thread: dict[str, float] = {}
        """This process's wake-ups a second per Python thread name (``pid`` None only)."""

    def _cpu(self) -> float:
        if self.pid is None:
            return time.process_time()  # this process, all threads
        import psutil

        t = psutil.Process(self.pid).cpu_times()
        return float(t.user + t.system + t.children_user + t.children_system)

    def start(self) -> None:
        self._t0, self._c0 = time.monotonic(), self._cpu()
        self._w0 = proc_counters.wakes(self.pid or os.getpid())
        self._s0 = proc_counters.totals(SERVER_PID) if SERVER_PID else None
        self._threads0 = proc_counters.threads(os.getpid()) if self.pid is None else {}

    def stop(self) -> None:
        dt = max(time.monotonic() - self._t0, 1e-9)
        self.share = (self._cpu() - self._c0) / dt
        self.wakes_per_s = (proc_counters.wakes(self.pid or os.getpid()) - self._w0) / dt
        if self._s0 is not None and SERVER_PID:
            after = proc_counters.totals(SERVER_PID)
            self.server = (
                after[0] - self._s0[0],
                after[1] - self._s0[1],
                after[2] - self._s0[2],
            )
        if self.pid is None:
            self.by_thread = _wakes_by_thread(
                self._threads0, proc_counters.threads(os.getpid()), dt
            )
        LAST_WAKES[CURRENT_ARM[0]] = self


def _wakes_by_thread(
    before: dict[str, proc_counters.Counters], after: dict[str, proc_counters.Counters], dt: float
) -> dict[str, float]:
    """Wake-ups a second per Python thread name of this process (threads of one name summed;
    native threads Python does not know, such as a C library's, as ``native``)."""
    import threading

    names = {str(t.native_id): t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for tid, (_, voluntary, involuntary) in after.items():
        _, v0, n0 = before.get(tid, (0.0, 0, 0))
        wakes = (voluntary - v0 + involuntary - n0) / dt
        name = names.get(tid, "native")
        name = "asyncio workers" if name.startswith("asyncio_") else name
        out[name] = out.get(name, 0.0) + wakes
    return out


SERVER_PID: int | None = None
"""llama-server's pid (set by ``run``): each window also counts what the server spent."""
CURRENT_ARM = [""]
"""The arm being measured (its letter), for ``CpuWindow.stop``."""
LAST_WAKES: dict[str, CpuWindow] = {}
"""Each arm's latest measuring window (wake-ups, server counters), read by ``run``."""


LAST_CPU: dict[str, float | None] = {}
"""The CPU share each arm's latest run used (read by ``run`` after each arm)."""
LAST_NOTE: dict[str, str] = {}
"""What each arm's latest run saw (idle cores, whether the app slowed down), for the log."""


def pace_note(pace: Any) -> str:
    idle = pace.last_idle_cores
    idle_text = "?" if idle is None else f"{idle:.2f}"
    return f"app saw {idle_text} idle cores, {'slowed' if pace.saturated else 'full rate'}"


async def generate(url: str, tokens: int) -> float:
    body = {
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": tokens,
        "ignore_eos": True,
        "temperature": 0,
        "cache_prompt": False,
    }
    async with httpx.AsyncClient(timeout=300, trust_env=False) as client:
        resp = await client.post(f"{url}/v1/chat/completions", json=body)
        return float(resp.json()["timings"]["predicted_per_second"])


async def arm_stream(url: str, tokens: int, gap_s: float) -> float:
    from coder_tui.core.chat.client import ChatClient, Delta, StreamEnd

    window = CpuWindow()
    window.start()
    end: StreamEnd | None = None
    async with ChatClient(url) as client:
        stream = client.stream_chat(
            [{"role": "user", "content": PROMPT}],
            max_tokens=tokens,
            temperature=0,
            extra={"ignore_eos": True, "cache_prompt": False},
        )
        async for event in stream:
            if isinstance(event, Delta):
                stream.read_gap_s = gap_s
            elif isinstance(event, StreamEnd):
                end = event
    window.stop()
    LAST_CPU["e"] = window.share
    if end is None or end.timings is None:
        raise RuntimeError(f"the stream has no timings: {end}")
    return end.timings.predicted_per_second


async def until(cond: Any, timeout_s: float = 60.0) -> None:
    end = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError
        await asyncio.sleep(0.05)


async def arm_dashboard(
    url: str, tokens: int, tmp: Path, key: str = "b", server_probe: bool = True
) -> float:
    """The F4 dashboard while the request runs. ``server_probe=False`` (a diagnostic arm): the
    samplers leave llama-server alone (no ``/metrics``, no ``/slots``), as nvitop does."""
    with HistoryStore(tmp / f"h-{time.monotonic_ns()}.sqlite3") as store:
        app = CoderApp(None, attach_url=url, store=store)
        async with app.run_test(size=(160, 50)) as pilot:
            await until(lambda: app.main is not None and app.main.server_ready)
            await until(lambda: app.sampler is not None)
            sampler = app.sampler
            assert sampler is not None
            probe = sampler.server
            if not server_probe:
                sampler.server = None
            await pilot.press("f4")
            await asyncio.sleep(2.0)  # the samplers settle at their rates
            window = CpuWindow()
            window.start()
            speed = await generate(url, tokens)
            window.stop()
            LAST_CPU[key] = window.share
            LAST_NOTE[key] = pace_note(app.tiles_pace)
            sampler.server = probe  # closed with the sampler
            await pilot.press("ctrl+q")
    return speed


async def arm_chat(
    url: str,
    tokens: int,
    tmp: Path,
    key: str,
    *,
    history: Path | None = None,
    chat: ChatSettings | None = None,
) -> float:
    """One reply from the app, in a new conversation. ``history``: the database to keep (a fresh
    one when not given); ``chat``: the ``[chat]`` settings (the defaults when not given)."""
    with HistoryStore(history or tmp / f"h-{time.monotonic_ns()}.sqlite3") as store:
        app = CoderApp(None, attach_url=url, store=store)
        async with app.run_test(size=(160, 50)) as pilot:
            await until(lambda: app.main is not None and app.main.server_ready)
            main = app.main
            assert main is not None
            if chat is not None:
                main.chat_settings = chat
                main.pace.busy_interval_s = chat.busy_refresh_s
            main.request_extra = {"ignore_eos": True, "max_tokens": tokens, "cache_prompt": False}
            await pilot.press("ctrl+n")  # the same prompt size every time
            await asyncio.sleep(2.0)
            prompt = main.query_one(PromptInput)
            window = CpuWindow()
            window.start()
            # The prompt's own handler, awaited, then the reply's worker: nothing here polls
            # while the reply runs (a 50 ms poll was 20 wake-ups a second of this process).
            await main.on_prompt_input_submitted(PromptInput.Submitted(prompt, PROMPT))
            reply_worker = next(w for w in main.workers if w.group == "chat" and not w.is_finished)
            await asyncio.wait_for(reply_worker.wait(), 300)
            window.stop()
            conv = main.conversation
            assert conv is not None
            LAST_CPU[key] = window.share
            reply = store.messages(conv.id)[-1]
            run = store.last_decode(url, reply.model)  # attached: known by its address
            how = "quiet (asked whole)" if run is not None and run.quiet else "streamed"
            LAST_NOTE[key] = f"{how}, reply {'slowed' if main.reply_paced else 'at full rate'}"
            await pilot.press("ctrl+q")
    if reply.predicted_per_second is None:
        raise RuntimeError(f"the chat reply has no timings: {reply.status} {reply.error}")
    return reply.predicted_per_second


def nvitop_argv() -> list[str] | None:
    """How to start nvitop here (its module, or its script on PATH), or None."""
    import importlib.util

    if importlib.util.find_spec("nvitop") is not None:
        return [sys.executable, "-m", "nvitop"]
    found = shutil.which("nvitop")
    return [found] if found else None


class PtyWatcher:
    """A terminal monitor (nvitop) running in a pseudo-terminal of 160x50, as a user would run it.

    Its screen output is read and dropped on a thread, so it never blocks on a full terminal."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        import fcntl
        import pty
        import struct
        import termios
        import threading

        self.argv = argv
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
        env = {**os.environ, **(env or {}), "TERM": "xterm-256color"}
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        os.close(slave)
        self.seen = 0
        self.tail = b""
        """The last 8 KiB drawn (for an error message)."""
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
            self.seen += len(chunk)
            self.tail = (self.tail + chunk)[-8192:]

    def screen_text(self) -> str:
        """What the last output said, escape sequences left out."""
        import re

        text = re.sub(
            rb"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|.)", b" ", self.tail
        )
        return " ".join(text.decode("utf-8", "replace").split())[-600:]

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        os.close(self.master)


async def arm_nvitop(tokens: int, seats: Seats) -> float:
    """(d): nvitop in a terminal while the request runs."""
    speed, window = await watched_request(seats, "nvitop", tokens)
    LAST_CPU["d"] = window.share
    return speed


F4, CTRL_N, CTRL_Q, ENTER = b"\x1bOS", b"\x0e", b"\x11", b"\r"
"""Keys as xterm sends them."""


class AppHome:
    """Where the coder-tui processes of the terminal arms keep their config and history: one
    home for the whole run, as a user's (the chat arm's quiet-reply rule reads the reply before)."""

    def __init__(self, root: Path, config_text: str, tokens: int) -> None:
        self.root = root
        self.config = root / "config.toml"
        root.mkdir(parents=True, exist_ok=True)
        # Replies of a fixed length: the server runs with --ignore-eos, the app asks for ``tokens``.
        import tomli_w

        from coder_tui.core.config.loader import tomllib

        config = tomllib.loads(config_text)
        config.setdefault("chat", {}).update(max_tokens=tokens, temperature=0)
        self.config.write_text(tomli_w.dumps(config))
        self.env = {f"XDG_{d}_HOME": str(root / d.lower()) for d in ("DATA", "CONFIG", "STATE")}
        self.env["XDG_CACHE_HOME"] = str(root / "cache")
        self.history_db = root / "data" / "coder-tui" / "history.sqlite3"

    def start(self, url: str, env: dict[str, str] | None = None) -> PtyWatcher:
        """``coder-tui --attach URL`` in a terminal of 160x50, with Textual's real driver
        (``env``: more variables for it)."""
        argv = [sys.executable, "-m", "coder_tui", "--config", str(self.config), "--attach", url]
        return PtyWatcher(argv, {**self.env, **(env or {})})

    def _newest(self, sql: str) -> Any:
        """The first row of ``sql`` on the history database, read-only (None before it exists)."""
        import sqlite3

        if not self.history_db.exists():
            return None
        con = sqlite3.connect(f"file:{self.history_db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute(sql).fetchone()
        finally:
            con.close()

    def last_reply(self) -> tuple[int, str, float | None] | None:
        """The newest assistant message: (id, status, decode tokens/s)."""
        row = self._newest(
            "SELECT id, status, predicted_per_second FROM messages "
            "WHERE role = 'assistant' ORDER BY id DESC LIMIT 1"
        )
        return (int(row[0]), str(row[1]), row[2]) if row else None

    def reply_done_after(
        self, before: tuple[int, str, float | None] | None
    ) -> tuple[int, str, float | None] | None:
        """The newest reply if it is newer than ``before`` (a ``last_reply``) and has ended."""
        reply = self.last_reply()
        new = reply is not None and reply[0] != (before[0] if before else None)
        return reply if new and reply is not None and reply[1] != "streaming" else None

    def last_run_quiet(self) -> bool:
        """Whether the newest reply was asked for whole (``decode_runs``, as the app recorded)."""
        row = self._newest("SELECT quiet FROM decode_runs ORDER BY at DESC LIMIT 1")
        return bool(row and row[0])


async def app_up(app: PtyWatcher) -> None:
    """Until coder-tui has drawn its screen (then ``APP_START_S`` more), or an error."""
    end = time.monotonic() + 20
    while app.seen < 4000 and app.proc.poll() is None and time.monotonic() < end:
        await asyncio.sleep(0.25)
    await asyncio.sleep(APP_START_S)
    if app.proc.poll() is not None or app.seen < 4000:
        state = "running" if app.proc.poll() is None else f"exited with {app.proc.returncode}"
        raise RuntimeError(f"coder-tui {state}, drew {app.seen} bytes: {app.screen_text()!r}")


async def app_quit(app: PtyWatcher) -> None:
    """Ctrl+Q, as a user leaves; terminated if it has not gone in 10 s."""
    app.press(CTRL_Q)
    for _ in range(100):
        if app.proc.poll() is not None:
            break
        await asyncio.sleep(0.1)
    app.close()


APP_START_S = 2.0
"""From coder-tui's first frame (about 0.5 s after its start) to its first key."""


async def on_dashboard(app: PtyWatcher) -> None:
    """Until the started coder-tui ``app`` has drawn its screen, then on its dashboard (F4) for
    2 s: its samplers settle at their rates."""
    await app_up(app)
    app.press(F4)
    await asyncio.sleep(2.0)


async def type_prompt(app: PtyWatcher) -> None:
    """A new conversation (Ctrl+N: the same prompt size every time) and ``PROMPT`` typed into
    coder-tui's prompt, not sent."""
    app.press(CTRL_N)
    await asyncio.sleep(0.5)
    app.press(PROMPT.encode())
    await asyncio.sleep(1.5)


def _state(pid: int) -> str:
    """The process's state letter (``T``: stopped), or ``X`` once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "X"


def _talks_to(pid: int, port: int) -> bool:
    """Whether ``pid`` holds an open TCP connection to ``port`` (on this host)."""
    import psutil

    return any(
        c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
        for c in psutil.Process(pid).net_connections(kind="tcp")
    )


async def pause(watcher: PtyWatcher, port: int) -> None:
    """Stop ``watcher`` as Ctrl+Z does (SIGTSTP: Textual and curses leave the screen, then stop),
    at a moment when it holds no connection to the server on ``port``: an open one, stopped,
    would make llama-server wake every 10 ms for 5 s (session 5)."""
    import signal

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


RESUME_S = 2.0
"""From a resident watcher's SIGCONT to the request: it draws its screen again (Textual and
curses redraw it whole) and its samplers settle at their rates."""


class Seats:
    """The watchers in terminals, one of each kind: ``"dashboard"`` (coder-tui on F4),
    ``"chat"`` (coder-tui on its chat screen) and ``"nvitop"``.

    Resident (the default since 2026-11-27 14:00): each is started once, before the first round,
    and stopped between its turns as Ctrl+Z stops it (SIGTSTP; SIGCONT ``RESUME_S`` before its
    request). A stopped process takes no CPU and wakes no one, so the other arms, (a) included,
    run with nothing watching. Fresh (``resident=False``, ``--restart-watchers``, as before):
    each turn starts its watcher and quits it after, so a start and a teardown sit next to each
    measured request, and a round takes longer."""

    def __init__(
        self,
        url: str,
        home: AppHome,
        *,
        resident: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.url = url
        self.env = env
        """More environment variables for the coder-tui processes (``AppHome.start``)."""
        self.port = int(url.rsplit(":", 1)[1].split("/")[0])
        self.home = home
        self.resident = resident
        self._running: dict[str, PtyWatcher] = {}
        self._seen: dict[str, int] = {}

    async def _start(self, kind: str) -> PtyWatcher:
        if kind == "nvitop":
            watcher = PtyWatcher(nvitop_argv() or ["nvitop"])
            await asyncio.sleep(2.0)
            if watcher.proc.poll() is not None:
                raise RuntimeError(f"nvitop exited with {watcher.proc.returncode}")
            return watcher
        app = self.home.start(self.url, self.env)
        if kind == "dashboard":
            await on_dashboard(app)
        else:
            await app_up(app)
        return app

    async def open(self, kinds: list[str]) -> None:
        """Resident: start the watchers of ``kinds`` and stop them until their turns."""
        if not self.resident:
            return
        for kind in kinds:
            self._running[kind] = await self._start(kind)
            await pause(self._running[kind], self.port)

    async def take(self, kind: str) -> PtyWatcher:
        """The watcher of ``kind``, running and settled."""
        import signal

        watcher = self._running.get(kind)
        if watcher is None:
            self._seen[kind] = 0
            watcher = self._running[kind] = await self._start(kind)
        else:
            self._seen[kind] = watcher.seen
            os.kill(watcher.proc.pid, signal.SIGCONT)
            await asyncio.sleep(RESUME_S)
            if watcher.proc.poll() is not None:
                raise RuntimeError(f"{kind} exited: {watcher.screen_text()!r}")
        return watcher

    async def leave(self, kind: str) -> None:
        """The turn of ``kind`` is over: stopped (resident) or quit. It must have drawn since
        its turn began (its start, or its redraw on resume): one that did not is not watching."""
        watcher = self._running[kind]
        drawn = watcher.seen - self._seen[kind]
        if self.resident:
            await pause(watcher, self.port)
        else:
            del self._running[kind]
            await self._quit(kind, watcher)
        if drawn == 0:
            raise RuntimeError(f"{kind} drew nothing in its turn: not watching")

    @staticmethod
    async def _quit(kind: str, watcher: PtyWatcher) -> None:
        """coder-tui as a user leaves it (Ctrl+Q); nvitop, which Ctrl+Q does not quit, ended."""
        await (asyncio.to_thread(watcher.close) if kind == "nvitop" else app_quit(watcher))

    async def close(self) -> None:
        """Every watcher still kept, resumed and quit."""
        import signal

        for watcher in self._running.values():
            if watcher.proc.poll() is None:
                os.kill(watcher.proc.pid, signal.SIGCONT)
        await asyncio.gather(*(self._quit(k, w) for k, w in self._running.items()))
        self._running.clear()


async def watched_request(seats: Seats, kind: str, tokens: int) -> tuple[float, CpuWindow]:
    """One request of ``tokens`` while the watcher of ``kind`` runs (taken for it, left after):
    its speed, and the watcher's CPU window over it."""
    watcher = await seats.take(kind)
    try:
        window = CpuWindow(watcher.proc.pid)
        window.start()
        speed = await generate(seats.url, tokens)
        window.stop()
        return speed, window
    finally:
        await seats.leave(kind)


async def arm_dashboard_terminal(tokens: int, seats: Seats) -> float:
    """(b): coder-tui in a terminal, attached, on its dashboard (F4), while the request runs."""
    speed, window = await watched_request(seats, "dashboard", tokens)
    LAST_CPU["b"] = window.share
    return speed


async def arm_chat_terminal(seats: Seats, key: str = "c") -> float:
    """(c): coder-tui in a terminal sends the prompt typed into it and shows the reply. The
    reply's end is read from the history database every 0.5 s (this process's only wake-ups
    besides reading the terminal); its speed is the server's timing, as stored."""
    home = seats.home
    app = await seats.take("chat")
    try:
        await type_prompt(app)
        before = home.last_reply()
        window = CpuWindow(app.proc.pid)
        window.start()
        app.press(ENTER)
        end = time.monotonic() + 300
        while True:
            await asyncio.sleep(0.5)
            reply = home.reply_done_after(before)
            if reply is not None:
                break
            if time.monotonic() > end or app.proc.poll() is not None:
                raise RuntimeError(f"no reply from coder-tui in the terminal: {home.last_reply()}")
        window.stop()
        LAST_CPU[key] = window.share
        LAST_NOTE[key] = "quiet (asked whole)" if home.last_run_quiet() else "streamed"
    finally:
        await seats.leave("chat")
    if reply[2] is None:
        raise RuntimeError(f"the chat reply has no timings: {reply}")
    return float(reply[2])


WAKER = """
import sys, time
period, work = float(sys.argv[1]), float(sys.argv[2])
nxt = time.monotonic()
while True:
    end = time.monotonic() + work
    while time.monotonic() < end:
        pass
    nxt += period
    time.sleep(max(0.0, nxt - time.monotonic()))
"""


async def arm_waker(url: str, tokens: int, key: str, period_s: float, work_s: float) -> float:
    """A diagnostic stand-in watcher: a process that wakes every ``period_s`` and spins for
    ``work_s``. Two of them with the same CPU share and different wake rates tell whether a
    watcher's wake-ups or its CPU time cost the model more."""
    proc = subprocess.Popen([sys.executable, "-c", WAKER, str(period_s), str(work_s)])
    try:
        await asyncio.sleep(1.0)
        window = CpuWindow(proc.pid)
        window.start()
        speed = await generate(url, tokens)
        window.stop()
        LAST_CPU[key] = window.share
        return speed
    finally:
        proc.kill()
        proc.wait()


async def arm_nothing(url: str, tokens: int) -> float:
    from coder_tui.core.chat.pacing import IdleCores

    window = CpuWindow()
    idle = IdleCores()
    window.start()
    speed = await generate(url, tokens)
    window.stop()
    LAST_CPU["a"] = window.share
    cores = idle.sample()
    LAST_NOTE["a"] = "" if cores is None else f"{cores:.2f} idle cores while generating"
    return speed


def bench_config(
    tmp: Path, threads: int | None = None, env: dict[str, str] | None = None
) -> tuple[Config, str]:
    """The bench demo model (Q4_K_M, generated under ``tmp``) served with ``threads`` (default:
    every core) and ``--ignore-eos``, on a free port, ``env`` added to the server's environment;
    and the demo's config text, for the coder-tui processes of the terminal arms.
    ``--ignore-eos``: the app's own replies run to ``max_tokens``, as the other arms' requests
    (``ignore_eos``) do."""
    demo = prepare_demo(tmp / "demo", "bench", ("Q4_K_M",), port=free_port())
    config = load_config(demo.config_path)
    base = config.profile("q4_k_m")
    profile = replace(
        base,
        threads=threads or os.cpu_count() or 1,
        extra_args=(*base.extra_args, "--ignore-eos"),
        env={**base.env, **(env or {})},
    )
    config = replace(
        config, server=replace(config.server, port=free_port()), profiles={"q4_k_m": profile}
    )
    return config, demo.config_path.read_text(encoding="utf-8")


async def start_server(config: Config, tmp: Path) -> ServerManager:
    """``bench_config``'s server, started and warmed up; its pid counted by every ``CpuWindow``."""
    global SERVER_PID
    mgr = ServerManager(config.server, log_dir=tmp / "logs")
    await mgr.start(config.profile("q4_k_m"))
    SERVER_PID = mgr.pid
    await generate(mgr.url, 32)  # warm-up
    return mgr


PINNED = {"OMP_PROC_BIND": "close", "OMP_PLACES": "threads"}
"""llama-server's decode threads are OpenMP's (``GGML_OPENMP``, on by default): this binds each to
one logical CPU, in order (``--pin``)."""

DASHBOARD = "b: dashboard (F4) in a terminal, default rates"
CHAT = "c: chatting in a terminal (defaults)"
OWN_PROCESS = "abcdwW"
"""Arms whose CPU is a process of its own (or, for (a), this one's request alone); the others run
inside this process and pay for the request too."""

Results = dict[str, list[tuple[float, float | None]]]
"""Per arm, per round: (tokens/s, CPU share of one core)."""


async def run(
    config: Config,
    config_text: str,
    rounds: int,
    tokens: int,
    tmp: Path,
    also_busy_refresh: float | None = None,
    stream_only: bool = False,
    no_probe: bool = False,
    wakers: bool = False,
    skip_chat: bool = False,
    skip_streamed: bool = False,
    in_process: bool = False,
    resident: bool = True,
    deadline: float | None = None,
) -> Results:
    """The interleaved rounds; with ``deadline`` (``time.monotonic()``), no round is started
    that would likely end after it (the rounds done so far, at their mean length, say)."""
    mgr = await start_server(config, tmp)
    seats: Seats | None = None
    try:
        url = mgr.url
        home = AppHome(tmp / "app-home", config_text, tokens)
        seats = Seats(url, home, resident=resident)
        kinds = (
            ["dashboard"] + ([] if skip_chat else ["chat"]) + (["nvitop"] if nvitop_argv() else [])
        )
        await seats.open(kinds)
        history = tmp / "chat-history.sqlite3"
        streamed = ChatSettings(quiet_above_tps=0)
        arms: dict[str, Any] = {
            "a: nothing watching": lambda: arm_nothing(url, tokens),
            DASHBOARD: lambda: arm_dashboard_terminal(tokens, seats),
        }
        if in_process:
            arms["i: dashboard in-process (headless)"] = lambda: arm_dashboard(
                url, tokens, tmp, "i"
            )
        if not skip_chat:
            await arm_chat_terminal(seats, "warm-up")  # the reply before
            arms[CHAT] = lambda: arm_chat_terminal(seats)
            if in_process:
                await arm_chat(url, tokens, tmp, "warm-up", history=history)
                arms["j: chatting in-process (headless)"] = lambda: arm_chat(
                    url, tokens, tmp, "j", history=history
                )
            if not skip_streamed:
                arms["g: chatting in-process, every reply streamed"] = lambda: arm_chat(
                    url, tokens, tmp, "g", chat=streamed
                )
        if nvitop_argv():
            arms["d: nvitop"] = lambda: arm_nvitop(tokens, seats)
        gap = config.chat.busy_refresh_s
        if stream_only:
            arms["e: (g)'s stream, not drawn"] = lambda: arm_stream(url, tokens, gap)
        if no_probe:
            arms["h: dashboard in-process, llama-server not probed"] = lambda: arm_dashboard(
                url, tokens, tmp, "h", server_probe=False
            )
        if wakers:  # 1 % of a core each: 20 wakes a second of 0.5 ms, or one every 2 s of 20 ms
            arms["w: waker, 20/s x 0.5 ms"] = lambda: arm_waker(url, tokens, "w", 0.05, 0.0005)
            arms["W: waker, 0.5/s x 20 ms"] = lambda: arm_waker(url, tokens, "W", 2.0, 0.02)
        if also_busy_refresh is not None:
            other = ChatSettings(quiet_above_tps=0, busy_refresh_s=also_busy_refresh)
            arms[f"f: in-process, streamed, busy_refresh_s = {also_busy_refresh:g}"] = lambda: (
                arm_chat(url, tokens, tmp, "f", chat=other)
            )
        results: Results = {name: [] for name in arms}
        names = list(arms)
        first_round = time.monotonic()
        for r in range(rounds):
            per_round = (time.monotonic() - first_round) / r if r else 0.0
            if deadline is not None and r and time.monotonic() + per_round > deadline:
                print(
                    f"stopping after {r} rounds: another would pass the time budget",
                    file=sys.stderr,
                )
                break
            for name in names[r % len(names) :] + names[: r % len(names)]:  # rotated
                await asyncio.sleep(SETTLE_S)
                LAST_CPU.pop(name[0], None)
                LAST_WAKES.pop(name[0], None)
                CURRENT_ARM[0] = name[0]
                LAST_NOTE.pop(name[0], None)
                speed = await arms[name]()
                cpu = LAST_CPU.get(name[0])
                results[name].append((speed, cpu))
                note = f", CPU {100 * cpu:.1f} % of a core" if cpu is not None else ""
                window = LAST_WAKES.get(name[0])
                if window is not None and window.wakes_per_s is not None:
                    note += f", {window.wakes_per_s:.1f} wakes/s"
                    busiest = sorted(window.by_thread.items(), key=lambda kv: -kv[1])[:4]
                    if busiest:
                        note += " (" + ", ".join(f"{n} {w:.1f}" for n, w in busiest if w) + ")"
                if window is not None and window.server is not None:
                    per_k = 1000 / tokens
                    cpu_s, switches, preempted = window.server
                    note += (
                        f", server per 1k tokens: {1000 * cpu_s * per_k:.0f} ms CPU, "
                        f"{switches * per_k:.0f} waits, {preempted * per_k:.0f} preempted"
                    )
                if LAST_NOTE.get(name[0]):
                    note += f", {LAST_NOTE[name[0]]}"
                print(f"round {r + 1}: {name}: {speed:.1f} t/s{note}", file=sys.stderr)
        return results
    finally:
        if seats is not None:
            await seats.close()
        await mgr.stop()


def table(results: Results, title: str) -> str:
    """The Markdown table (and notes) of a run."""
    base = [speed for speed, _ in results["a: nothing watching"]]
    lines = [
        title,
        "",
        "| arm | median t/s | ratio to (a), median | ratio range | CPU, % of a core | "
        "watcher's own CPU | target |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    base_cpu = statistics.median([100 * c for _, c in results["a: nothing watching"] if c])
    for name, runs in results.items():
        values = [speed for speed, _ in runs]
        cpus = [100 * cpu for _, cpu in runs if cpu is not None]
        ratios = [v / b for v, b in zip(values, base, strict=True)]
        target = "≥ 0.98" if name[0] in "bc" else ""
        cpu_text = f"{statistics.median(cpus):.1f}" if cpus else "–"
        # (a) is this process sending the request; the arms run here pay that too, those in
        # processes of their own do not
        own = (
            statistics.median(cpus) - (0.0 if name[0] in OWN_PROCESS else base_cpu)
            if cpus
            else None
        )
        own_text = "" if own is None or name[0] == "a" else f"{own:.1f}"
        lines.append(
            f"| {name} | {statistics.median(values):.1f} | {statistics.median(ratios):.3f} | "
            f"{min(ratios):.3f}-{max(ratios):.3f} | {cpu_text} | {own_text} | {target} |"
        )
    stream_name = "e: (g)'s stream, not drawn"
    streamed_name = "g: chatting in-process, every reply streamed"
    if stream_name in results and streamed_name in results:
        chat = [speed for speed, _ in results[streamed_name]]
        bare = [speed for speed, _ in results[stream_name]]
        drawn = [c / e for c, e in zip(chat, bare, strict=True)]
        streaming = [e / a for e, a in zip(bare, base, strict=True)]
        lines.append("")
        lines.append(
            f"(g)/(e), what drawing the streamed reply costs beyond its stream: median "
            f"{statistics.median(drawn):.3f} (range {min(drawn):.3f}-{max(drawn):.3f}); (e)/(a), "
            f"what streaming costs the server: median {statistics.median(streaming):.3f}."
        )
    if "d: nvitop" not in results:
        lines.append("")
        lines.append("(d) nvitop is not installed here: not measured.")
    else:
        nvitop = [speed for speed, _ in results["d: nvitop"]]
        lines.append("")
        for key in (DASHBOARD, CHAT):
            if key not in results:
                continue
            pair = [x / n for (x, _), n in zip(results[key], nvitop, strict=True)]
            lines.append(
                f"({key[0]})/(d), per round: median {statistics.median(pair):.3f} "
                f"(range {min(pair):.3f}-{max(pair):.3f}; above 1: faster than under nvitop)."
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=384)
    parser.add_argument(
        "--also-busy-refresh",
        type=float,
        help="add an arm (f): chatting with this [chat] busy_refresh_s instead of the default",
    )
    parser.add_argument(
        "--also-stream-only",
        action="store_true",
        help="add an arm (e): the streamed reply read by coder-tui's client, drawn nowhere",
    )
    parser.add_argument(
        "--also-no-probe",
        action="store_true",
        help="add a diagnostic arm (h): the dashboard with no /metrics or /slots requests",
    )
    parser.add_argument(
        "--also-wakers",
        action="store_true",
        help="add two diagnostic arms: a process taking 1 %% of a core in 20 wake-ups a second "
        "(w) or in one every 2 s (W)",
    )
    parser.add_argument(
        "--skip-chat",
        action="store_true",
        help="leave out the chatting arms (c) and (g)",
    )
    parser.add_argument(
        "--skip-streamed",
        action="store_true",
        help="leave out arm (g), chatting with every reply streamed",
    )
    parser.add_argument(
        "--also-in-process",
        action="store_true",
        help="add diagnostic arms (i) and (j): the dashboard and the chat run inside this "
        "process on Textual's headless driver (no terminal, no input thread)",
    )
    parser.add_argument(
        "--threads", type=int, help="server threads (default: every core, as issue 10 asks)"
    )
    parser.add_argument(
        "--time-budget-s",
        type=float,
        help="start no round that would likely end later than this many seconds after the start "
        "(the table covers the rounds done; a device call's limit: give --rounds generously)",
    )
    parser.add_argument(
        "--restart-watchers",
        action="store_true",
        help="start each watcher for its turn and quit it after (as before 2026-11-27 14:00) "
        "instead of keeping it and stopping it between turns",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="the server's threads each on one core (OpenMP: "
        + " ".join(f"{k}={v}" for k, v in PINNED.items())
        + ")",
    )
    parser.add_argument(
        "--append-to",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "docs" / "performance.md",
        help="Markdown file the table is appended to (default docs/performance.md)",
    )
    args = parser.parse_args()
    deadline = None if args.time_budget_s is None else time.monotonic() + args.time_budget_s
    tmp = Path(tempfile.mkdtemp(prefix="observer-"))
    threads = args.threads or os.cpu_count() or 1
    config, config_text = bench_config(tmp, threads, PINNED if args.pin else None)
    results = asyncio.run(
        run(
            config,
            config_text,
            args.rounds,
            args.tokens,
            tmp,
            args.also_busy_refresh,
            args.also_stream_only,
            args.also_no_probe,
            args.also_wakers,
            args.skip_chat,
            args.skip_streamed,
            args.also_in_process,
            not args.restart_watchers,
            deadline,
        )
    )
    done = len(results["a: nothing watching"])
    title = (
        f"### observer ({time.strftime('%Y-%m-%d %H:%M')}, bench demo Q4_K_M, {threads} threads "
        f"on {os.cpu_count()} cores{', pinned' if args.pin else ''}, {args.tokens} tokens, "
        f"{done} interleaved rounds, watchers "
        f"{'restarted for each turn' if args.restart_watchers else 'stopped between turns'})"
    )
    text = table(results, title)
    print(text)
    print(json.dumps(results), file=sys.stderr)
    with args.append_to.open("a", encoding="utf-8") as fh:
        fh.write("\n" + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
