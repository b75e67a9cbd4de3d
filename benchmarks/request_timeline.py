"""Where coder-tui's CPU goes in one request: before the server starts, while it decodes, after.

coder-tui runs in a pseudo-terminal, attached to the bench demo model's server (threads on every
core), and is kept between requests and stopped between them as ``observer.py`` keeps its
watchers (``Seats``). Two screens:
  chat       its own reply, typed in (two replies before it make it a quiet one, as in the
             observer's arm (c)); the request goes out when the prompt's Enter is handled;
  dashboard  F4, while this process sends the same request (arm (b)).
Every 10 ms this process reads the CPU time of all of coder-tui's threads and of the server's
(``/proc/*/task/*/schedstat``, in ns) and coder-tui's wake-ups. A 10 ms step in which the server
used more than half a core counts as decoding. Per request it reports coder-tui's CPU before the
decode (a reply's start: laid out, then the request goes out), during it (as a share of a core,
and the cost of each tick: a run of steps with more than 0.3 ms) and after it until 1 s later
(the reply drawn), and its wake-ups a second during the decode; medians over requests. The steps
in which the decode begins and ends count with before and after: the request's sending and the
answer's parsing share them with the server's first and last work.

This process's own polls take CPU from the server, so speeds here are not the observer's; the
table is printed, not appended (``docs/performance.md`` quotes it where it is used).

    python benchmarks/request_timeline.py [--requests 3] [--tokens 1024] [--src OTHER/src]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import observer
from dashboard_ab import source_env
from observer import AppHome, Seats, bench_config, generate, start_server, type_prompt

STEP_S = 0.01
TICK_MS = 0.3
"""A step in which coder-tui used more than this much CPU is part of a tick (its work)."""


def _cpu_and_wakes(pid: int) -> tuple[float, int]:
    """CPU seconds of all the threads of ``pid`` (schedstat) and their context switches."""
    cpu_ns = wakes = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            cpu_ns += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
            status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except (OSError, IndexError):
            continue  # the thread ended
        for line in status.splitlines():
            if "ctxt_switches" in line:
                wakes += int(line.split()[1])
    return cpu_ns / 1e9, wakes


@dataclass(frozen=True)
class Step:
    t: float
    app_ms: float
    app_wakes: int
    server_cores: float


@dataclass(frozen=True)
class Split:
    before_ms: float
    during_ms_per_s: float
    tick_ms: list[float]
    after_ms: float
    wakes_per_s: float
    decode_s: float


def split(steps: list[Step]) -> Split:
    """A request's steps cut at the first and last decoding step."""
    busy = [i for i, s in enumerate(steps) if s.server_cores > 0.5]
    if not busy:
        raise RuntimeError("the server never decoded in the window")
    # The steps in which the decode begins and ends go with before and after: the request's
    # sending and the answer's parsing share them with the server's first and last work.
    first, last = busy[0] + 1, busy[-1] - 1
    if last < first:
        raise RuntimeError("the decode was too short to measure")
    during = steps[first : last + 1]
    decode_s = max(steps[last].t - steps[first - 1].t, STEP_S)
    ticks: list[float] = []
    run = 0.0
    for s in during:
        if s.app_ms > TICK_MS:
            run += s.app_ms
        elif run:
            ticks.append(run)
            run = 0.0
    if run:
        ticks.append(run)
    return Split(
        before_ms=sum(s.app_ms for s in steps[:first]),
        during_ms_per_s=sum(s.app_ms for s in during) / decode_s,
        tick_ms=ticks,
        after_ms=sum(s.app_ms for s in steps[last + 1 :]),
        wakes_per_s=sum(s.app_wakes for s in during) / decode_s,
        decode_s=decode_s,
    )


async def record(app_pid: int, done: asyncio.Future[None]) -> list[Step]:
    """Steps every ``STEP_S`` until ``done``, then 1 s more."""
    server = observer.SERVER_PID
    assert server is not None
    steps: list[Step] = []
    t0 = last_t = time.monotonic()
    app0, wakes0 = _cpu_and_wakes(app_pid)
    srv0, _ = _cpu_and_wakes(server)
    end: float | None = None
    while end is None or time.monotonic() < end:
        await asyncio.sleep(STEP_S)
        now = time.monotonic()
        app, wakes = _cpu_and_wakes(app_pid)
        srv, _ = _cpu_and_wakes(server)
        steps.append(
            Step(now - t0, 1000 * (app - app0), wakes - wakes0, (srv - srv0) / (now - last_t))
        )
        app0, wakes0, srv0, last_t = app, wakes, srv, now
        if end is None and done.done():
            end = now + 1.0
    return steps


async def chat_request(seats: Seats) -> list[Step]:
    home = seats.home
    app = await seats.take("chat")
    try:
        await type_prompt(app)
        before = home.last_reply()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def watch_db() -> None:
            while True:
                await asyncio.sleep(0.25)
                if home.reply_done_after(before) is not None:
                    done.set_result(None)
                    return

        watcher = asyncio.ensure_future(watch_db())
        app.press(observer.ENTER)
        steps = await record(app.proc.pid, done)
        await watcher
        return steps
    finally:
        await seats.leave("chat")


async def dashboard_request(seats: Seats, tokens: int) -> list[Step]:
    app = await seats.take("dashboard")
    try:
        request = asyncio.ensure_future(generate(seats.url, tokens))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        request.add_done_callback(lambda _: done.set_result(None))
        steps = await record(app.proc.pid, done)
        await request
        return steps
    finally:
        await seats.leave("dashboard")


async def run(
    requests: int, tokens: int, tmp: Path, src: Path | None = None
) -> dict[str, list[Split]]:
    config, config_text = bench_config(tmp)
    mgr = await start_server(config, tmp)
    home = AppHome(tmp / "home", config_text, tokens)
    seats = Seats(mgr.url, home, resident=True, env=source_env(src))
    try:
        await seats.open(["chat", "dashboard"])
        for _ in range(2):  # replies before: the measured ones are quiet, as in the observer
            await observer.arm_chat_terminal(seats, "warm-up")
        out: dict[str, list[Split]] = {"chat": [], "dashboard": []}
        for n in range(requests):
            for screen in ("chat", "dashboard"):
                await asyncio.sleep(observer.SETTLE_S)
                steps = await (
                    chat_request(seats) if screen == "chat" else dashboard_request(seats, tokens)
                )
                out[screen].append(split(steps))
                s = out[screen][-1]
                print(
                    f"{n + 1}: {screen}: before {s.before_ms:.1f} ms, during "
                    f"{s.during_ms_per_s:.2f} ms/s over {s.decode_s:.1f} s (ticks "
                    f"{', '.join(f'{t:.1f}' for t in s.tick_ms)} ms), after {s.after_ms:.1f} ms",
                    file=sys.stderr,
                )
        return out
    finally:
        await seats.close()
        await mgr.stop()


def table(results: dict[str, list[Split]], tokens: int) -> str:
    lines = [
        f"### request_timeline ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
        f"{tokens} tokens, {len(results['chat'])} requests a screen, medians)",
        "",
        "| screen | before the decode, ms | during, % of a core | a tick during it, ms "
        "| after it (1 s), ms | wake-ups a second during it |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for screen, splits in results.items():
        ticks = [t for s in splits for t in s.tick_ms]

        def med(values: list[float]) -> float:
            return statistics.median(values) if values else 0.0

        lines.append(
            f"| {screen} | {med([s.before_ms for s in splits]):.1f} | "
            f"{med([s.during_ms_per_s for s in splits]) / 10:.2f} | {med(ticks):.1f} | "
            f"{med([s.after_ms for s in splits]):.1f} | "
            f"{med([s.wakes_per_s for s in splits]):.1f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument(
        "--src", type=Path, help="run the coder-tui in this src/ folder (default: this checkout's)"
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="request-timeline-"))
    results = asyncio.run(run(args.requests, args.tokens, tmp, args.src))
    print(table(results, args.tokens))
    return 0


if __name__ == "__main__":
    sys.exit(main())
