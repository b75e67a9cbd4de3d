"""Observer guard: decode tokens/s with coder-tui watching against nothing watching (issue 10).

The bench demo model (Q4_K_M) is served with its threads on every core and ``--ignore-eos``;
each arm times the same fixed-length generation (the server's own ``predicted_per_second``),
interleaved round by round, the arms' order rotated each round, 1 s apart:
  (a) nothing watching: the request alone;
  (b) coder-tui in a terminal (160x50, its real driver), attached, on its dashboard (F4);
  (c) coder-tui in a terminal, chatting with its defaults: the prompt is typed in and sent by
      coder-tui itself. Its home is kept across rounds and starts with one reply, so each
      measured reply follows a fast one (quiet when no core was idle, as by default);
  (d) nvitop in the same kind of terminal, if installed (said so otherwise);
  (g) with ``--also-streamed``: (c) with every reply streamed (``[chat] quiet_above_tps = 0``);
  (B), (C) with ``--baseline-src DIR``: (b) and (c) with the coder-tui of another checkout
      (``DIR`` holds its ``coder_tui`` package: ``git archive REV src | tar -x``, then
      ``DIR=src``), to compare two versions side by side on one machine;
  (s) with ``--also-stream-alone``: nothing watching, the request streamed and read a second
      apart as coder-tui reads a quiet reply: the server's own cost of streaming, apart from
      coder-tui's.
The watchers are started once and stopped between their turns as Ctrl+Z stops them
(``harness/watchers.py``). Target: (b) and (c) at least 0.98 of (a), and not below nvitop (d).

Prints one table: per arm the geometric mean of the per-round ratios to (a) and to (d), with
a 95 % bootstrap interval, and the watcher's CPU and wake-ups during its request. Each round's
line goes to stderr (with the server's CPU, waits and preemptions per 1,000 tokens); keep it
(``2> rounds.log``) to pool several runs later: ``--pool rounds-1.log rounds-2.log``.

    python benchmarks/observer.py [--rounds 5] [--tokens 384] [--threads N] [--also-streamed]
    python benchmarks/observer.py --pool LOG [LOG ...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from harness import stats, table
from harness.counters import Window
from harness.server import bench_config, generate, start_server
from harness.terminal import (
    ENTER,
    AppHome,
    Terminal,
    app_quit,
    app_up,
    nvitop_argv,
    on_dashboard,
    type_prompt,
)
from harness.watchers import Seats, Starter

SETTLE_S = 1.0
ARMS = {
    "a": "a: nothing watching",
    "b": "b: dashboard (F4) in a terminal",
    "c": "c: chatting in a terminal (defaults)",
    "d": "d: nvitop",
    "g": "g: chatting in a terminal, every reply streamed",
    "s": "s: nothing watching, the request streamed",
    "B": "B: dashboard (F4), baseline coder-tui",
    "C": "C: chatting (defaults), baseline coder-tui",
}
TARGET = 0.98


@dataclass(frozen=True)
class Turn:
    """One arm's turn in one round."""

    tokens_per_s: float
    cpu_pct: float | None = None
    wakes_per_s: float | None = None


Round = dict[str, Turn]
"""Arm letter -> its turn."""
Timed = tuple[float, Window, str]
"""One timed request: the server's tokens/s, the watcher's window, the round line's note."""


class Run:
    """The arms of one run: the server, and the watchers kept in their seats."""

    def __init__(self, url: str, server_pid: int | None, tokens: int) -> None:
        self.url, self.server_pid, self.tokens = url, server_pid, tokens
        self.starters: dict[str, Starter] = {}
        self.homes: dict[str, AppHome] = {}
        self.seats = Seats(url, self.starters)
        self.stream_alone = False

    def add_coder_tui(self, kind: str, home: AppHome, *, dashboard: bool) -> None:
        """coder-tui attached in a terminal, on its dashboard or its chat screen."""
        self.homes[kind] = home

        async def start() -> Terminal:
            app = home.attach(self.url)
            try:
                await (on_dashboard(app) if dashboard else app_up(app))
            except BaseException:
                await app_quit(app)
                raise
            return app

        self.starters[kind] = start

    def add_nvitop(self, argv: list[str]) -> None:
        async def start() -> Terminal:
            watcher = Terminal(argv)
            await asyncio.sleep(2.0)
            if watcher.proc.poll() is not None:
                text = watcher.screen_text()
                watcher.close()
                raise RuntimeError(f"nvitop exited with {watcher.proc.returncode}: {text!r}")
            return watcher

        self.starters["d"] = start

    def arms(self) -> dict[str, Callable[[], Awaitable[Timed]]]:
        """Arm letter -> one timed request."""
        arms: dict[str, Callable[[], Awaitable[Timed]]] = {"a": self.nothing}
        if self.stream_alone:
            arms["s"] = self.streamed
        for kind in self.starters:
            arms[kind] = (
                (lambda k=kind: self.chat(k))
                if kind in ("c", "g", "C")
                else (lambda k=kind: self.watched(k))
            )
        return arms

    def _timed(self, speed: float, window: Window, note: str = "") -> Timed:
        return speed, window, window.describe(self.tokens) + (f", {note}" if note else "")

    async def nothing(self) -> Timed:
        window = Window(os.getpid(), self.server_pid).start()
        speed = await generate(self.url, self.tokens)
        return self._timed(speed, window.stop(), "the request itself")

    async def streamed(self) -> Timed:
        window = Window(os.getpid(), self.server_pid).start()
        speed = await generate(self.url, self.tokens, streamed=True)
        return self._timed(speed, window.stop(), "the request itself, streamed")

    async def watched(self, kind: str) -> Timed:
        """The request while the watcher of ``kind`` runs."""
        watcher = await self.seats.take(kind)
        try:
            window = Window(watcher.proc.pid, self.server_pid).start()
            speed = await generate(self.url, self.tokens)
            window.stop()
        finally:
            await self.seats.leave(kind)
        return self._timed(speed, window)

    async def chat(self, kind: str) -> Timed:
        """coder-tui sends the prompt typed into it; the reply's end is read from its history
        database every 0.5 s (this process's only wake-ups besides reading the terminal)."""
        home = self.homes[kind]
        app = await self.seats.take(kind)
        try:
            await type_prompt(app)
            before = home.last_reply()
            window = Window(app.proc.pid, self.server_pid).start()
            app.press(ENTER)
            end = time.monotonic() + 300
            while (reply := home.reply_done_after(before)) is None:
                if time.monotonic() > end or app.proc.poll() is not None:
                    raise RuntimeError(f"no reply from coder-tui: {home.last_reply()}")
                await asyncio.sleep(0.5)
            window.stop()
            how = "quiet (shown whole)" if home.last_run_quiet() else "streamed"
        finally:
            await self.seats.leave(kind)
        if reply[2] is None:
            raise RuntimeError(f"the chat reply has no timings: {reply}")
        return self._timed(reply[2], window, how)


async def measure(args: argparse.Namespace, tmp: Path) -> list[Round]:
    """The interleaved rounds; with ``--time-budget-s``, no round is started that would likely
    end after it (the rounds so far, at their mean length, say)."""
    deadline = None if args.time_budget_s is None else time.monotonic() + args.time_budget_s
    config, profile = bench_config(tmp, threads=args.threads)
    mgr = await start_server(config, profile, tmp)
    run = Run(mgr.url, mgr.pid, args.tokens)
    run.stream_alone = args.also_stream_alone
    chat = {"max_tokens": args.tokens, "temperature": 0}
    home = AppHome(tmp / "home", config, chat=chat)
    run.add_coder_tui("b", home, dashboard=True)
    if not args.skip_chat:
        run.add_coder_tui("c", home, dashboard=False)
    if args.also_streamed:
        streamed = AppHome(tmp / "home-streamed", config, chat={**chat, "quiet_above_tps": 0})
        run.add_coder_tui("g", streamed, dashboard=False)
    if args.baseline_src:
        path = os.pathsep.join([str(args.baseline_src.resolve()), os.environ.get("PYTHONPATH", "")])
        base = AppHome(tmp / "home-base", config, chat=chat, env={"PYTHONPATH": path})
        run.add_coder_tui("B", base, dashboard=True)
        run.add_coder_tui("C", base, dashboard=False)
    nvitop = nvitop_argv()
    if nvitop:
        run.add_nvitop(nvitop)
    arms = run.arms()
    rounds: list[Round] = []
    try:
        await run.seats.open()
        for chatting in ("c", "C"):
            if chatting in arms:
                await run.chat(chatting)  # the reply before: each measured one follows one
        letters = list(arms)
        first = time.monotonic()
        for r in range(args.rounds):
            per_round = (time.monotonic() - first) / r if r else 0.0
            if deadline is not None and r and time.monotonic() + per_round > deadline:
                print(f"stopping after {r} rounds: the time budget", file=sys.stderr)
                break
            turns: Round = {}
            for letter in letters[r % len(letters) :] + letters[: r % len(letters)]:
                await asyncio.sleep(SETTLE_S)
                speed, window, note = await arms[letter]()
                turns[letter] = Turn(speed, 100 * window.share, window.wakes_per_s)
                print(f"round {r + 1}: {ARMS[letter]}: {speed:.1f} t/s, {note}", file=sys.stderr)
            rounds.append(turns)
    finally:
        await run.seats.close()
        await mgr.stop()
    return rounds


ROUND = re.compile(
    r"^round (\d+): (\w): .*?: ([\d.]+) t/s(?:, CPU ([\d.]+) % of a core, ([\d.]+) wakes/s)?"
)


def pooled(paths: list[Path]) -> list[Round]:
    """The rounds of the runs whose round lines (stderr) are in ``paths``, one run a file."""
    out: list[Round] = []
    for path in paths:
        found: dict[int, Round] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            m = ROUND.match(line)
            if m:
                cpu, wakes = (float(m[i]) if m[i] else None for i in (4, 5))
                found.setdefault(int(m[1]), {})[m[2]] = Turn(float(m[3]), cpu, wakes)
        out += [found[k] for k in sorted(found)]
    return out


def ratios(rounds: list[Round], arm: str, base: str) -> stats.Interval | None:
    """``arm``'s speed over ``base``'s, round by round, pooled (None without a common round)."""
    values = [r[arm].tokens_per_s / r[base].tokens_per_s for r in rounds if {arm, base} <= r.keys()]
    return stats.geometric_mean(values) if values and arm != base else None


def render(rounds: list[Round], title: str) -> str:
    """The table: one row per arm."""
    rows = []
    for arm in sorted({k for r in rounds for k in r}):
        turns = [r[arm] for r in rounds if arm in r]
        to_a, to_d = ratios(rounds, arm, "a"), ratios(rounds, arm, "d")
        cpu = [t.cpu_pct for t in turns if t.cpu_pct is not None]
        wakes = [t.wakes_per_s for t in turns if t.wakes_per_s is not None]
        guarded = arm in "bc" and to_a is not None
        rows.append(
            [
                ARMS.get(arm, arm),
                len(turns),
                f"{stats.median([t.tokens_per_s for t in turns]):.1f}",
                to_a or "",
                to_d if to_d and arm != "a" else "",
                f"{stats.median(cpu):.1f}" if cpu else "",
                f"{stats.median(wakes):.1f}" if wakes else "",
                f"≥ {TARGET} of (a)" if guarded else "",
                ("yes" if to_a and to_a.value >= TARGET else "no") if guarded else "",
            ]
        )
    notes = [
        "Ratios: geometric mean of the per-round ratios, 95 % bootstrap interval; to (d) above "
        "1: faster than under nvitop. CPU and wake-ups: the watcher's process over its request "
        "((a): this process sending it)."
    ]
    if not any("d" in r for r in rounds):
        notes.append("(d) nvitop is not installed here: not measured.")
    header = ["arm", "rounds", "median t/s", "to (a)", "to (d) nvitop", "CPU, % of a core"]
    header += ["wake-ups/s", "target", "holds"]
    return table.render(title, header, rows, notes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=384)
    parser.add_argument("--threads", type=int, help="server threads (default: every core)")
    parser.add_argument(
        "--time-budget-s",
        type=float,
        help="start no round that would likely end later than this many seconds from now "
        "(a device call's limit: give --rounds generously)",
    )
    parser.add_argument("--skip-chat", action="store_true", help="leave out arm (c)")
    parser.add_argument(
        "--also-streamed",
        action="store_true",
        help="add arm (g): chatting with every reply streamed ([chat] quiet_above_tps = 0)",
    )
    parser.add_argument(
        "--baseline-src",
        type=Path,
        metavar="DIR",
        help="add arms (B) and (C): (b) and (c) with the coder_tui package under DIR",
    )
    parser.add_argument(
        "--also-stream-alone",
        action="store_true",
        help="add arm (s): nothing watching, the request streamed (the server's cost of it)",
    )
    parser.add_argument(
        "--pool",
        nargs="+",
        type=Path,
        metavar="LOG",
        help="measure nothing: pool the round lines of earlier runs (their stderr, one a file)",
    )
    args = parser.parse_args()
    if args.pool:
        rounds = pooled(args.pool)
        runs = f"{len(args.pool)} run{'s' if len(args.pool) > 1 else ''}"
        title = f"Observer, {len(rounds)} rounds pooled from {runs} (measured where they ran)"
    else:
        rounds = asyncio.run(measure(args, Path(tempfile.mkdtemp(prefix="observer-"))))
        threads = args.threads or os.cpu_count()
        title = (
            f"Observer: bench demo Q4_K_M, {threads} server threads on {os.cpu_count()} cores, "
            f"{args.tokens} tokens, {len(rounds)} rounds"
        )
    if not rounds or not any("a" in r for r in rounds):
        print("no rounds to report", file=sys.stderr)
        return 1
    print(render(rounds, title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
