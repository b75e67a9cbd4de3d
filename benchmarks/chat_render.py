"""The chat pane's CPU and token-to-screen delay while a reply streams: the guard of its targets.

Starts ``benchmarks/sse_source.py`` in its own process (loopback, synthetic tokens at a fixed
rate) and mounts the chat pane (``ChatView``, as wide as on the main screen) in a small Textual app
whose driver stands in for a terminal: Textual renders each frame to terminal bytes, as for a
real one, and the driver keeps them with the time they were written. Then one chat turn
(``core/chat/session.py`` ``ChatTurn``) sends a prompt to the source, and its events are drawn by
the renderer the main screen uses (``ui/widgets/chat_turn.py`` ``TurnRenderer``): the reply goes
through the same saving, pacing, coalescing and widgets as in the app, with nothing patched.

- CPU: ``time.process_time()`` of this process (the turn and the drawing; the source runs
  elsewhere) over the streaming window, from the first frame that shows the reply's text to the
  last, as a share of one core;
- delay: for each token, the first frame whose bytes show it (every token carries a marker
  ``t<i>``; a frame showing a later one shows it too) minus the ``time.time()`` at which the
  source wrote it (same clock, same machine).

Targets: at most 15 % of one core at 100 tokens/s (prose), token-to-screen p95 at most 150 ms at
up to 200 tokens/s. The pace is the app's (``[chat] busy_refresh_s``): while no CPU core is idle
a reply is drawn once a second on purpose, and the ``paced`` column says so (the delay target is
for a machine with an idle core). Scenarios: prose at 50/100/200/1000 tokens/s, prose with pauses
(text that no next token pushes out), one growing 2,000-token code block, and a long reply of
prose and code blocks.

    python3 benchmarks/chat_render.py            # about 2 minutes
    python3 benchmarks/chat_render.py --quick    # about 30 s, 2 s replies
    python3 benchmarks/chat_render.py --only code --rates 100
    python3 benchmarks/chat_render.py --busy-refresh-s 0   # never paced: a busy machine's cost
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import dataclasses
import gc
import json
import re
import select
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import table
from harness.stand_in import stand_in_driver
from harness.stats import percentile
from sse_source import tokens_for  # the source's own token texts
from textual.app import App, ComposeResult
from textual.containers import Horizontal
from textual.driver import Driver
from textual.widgets import Static

from coder_tui.core.chat.pacing import BusyPace
from coder_tui.core.chat.session import ChatTurn
from coder_tui.core.chat.turn_events import TurnEnded
from coder_tui.core.config.schema import ChatSettings
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui.widgets.chat_turn import TurnRenderer
from coder_tui.ui.widgets.chat_view import ChatView

SOURCE = Path(__file__).with_name("sse_source.py")
CPU_TARGET = 0.15  # share of one core at 100 tokens/s
P95_TARGET_MS = 150.0  # at up to 200 tokens/s
MARKER = re.compile(r"(?<![0-9A-Za-z])t([0-9]+)(?![0-9])")
ESCAPE = re.compile(r"\x1b(\[[0-9;:?<=>]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|.)")
"""A terminal escape sequence (CSI, OSC or one character): read as a space between words."""


@dataclass(frozen=True)
class Scenario:
    name: str
    rate: float
    tokens: int
    mode: str = "prose"
    pause_every: int = 0
    """The source pauses ``pause_s`` after every ``pause_every`` tokens (0: never)."""
    pause_s: float = 0.0

    def bench(self) -> dict[str, Any]:
        """The request's ``bench`` object: how ``sse_source.py`` streams this reply."""
        return {
            "rate": self.rate,
            "tokens": self.tokens,
            "mode": self.mode,
            "pause_every": self.pause_every,
            "pause_s": self.pause_s,
        }


SCENARIOS = (
    Scenario("prose", 50, 500),
    Scenario("prose", 100, 1000),
    Scenario("prose", 200, 2000),
    Scenario("prose", 1000, 5000),
    Scenario("prose, pauses", 100, 1000, pause_every=15, pause_s=0.3),
    Scenario("one code block", 100, 2000, "code"),
    Scenario("prose + code blocks", 100, 3000, "mixed"),
)


@dataclass(frozen=True)
class Result:
    scenario: Scenario
    cpu_share: float
    cpu_first_quarter: float
    cpu_last_quarter: float
    p50_ms: float
    p95_ms: float
    max_ms: float
    updates_per_s: float
    """Frames that showed new text, per second of the streaming window."""
    paced: bool


@dataclass
class Frames:
    """What the stand-in terminal was sent: (``time.time()``, ``process_time()``, bytes)."""

    writes: list[tuple[float, float, str]] = field(default_factory=list)

    def driver(self) -> type[Driver]:
        """A driver that takes frames as a terminal's driver would (so Textual renders them to
        terminal bytes) and keeps them instead of writing them anywhere."""
        return stand_in_driver(
            lambda data: self.writes.append((time.time(), time.process_time(), data))
        )

    def shown(self) -> list[tuple[float, float, int]]:
        """(time, CPU time, highest token marker on screen) at each frame that showed new text."""
        out: list[tuple[float, float, int]] = []
        highest = -1
        for at, cpu, data in self.writes:
            marks = [int(m) for m in MARKER.findall(ESCAPE.sub(" ", data))]
            if marks and max(marks) > highest:
                highest = max(marks)
                out.append((at, cpu, highest))
        return out


class ChatPane(App[None]):
    """The chat pane with the side column's room beside it, as on the main screen."""

    CSS = """
    #chat { width: 2fr; }
    #side { width: 1fr; min-width: 44; }
    """

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield ChatView(id="chat")
            yield Static(id="side")

    def on_mount(self) -> None:
        self.query_one(ChatView).prompt.focus()  # as on the main screen: its cursor blinks


def _share(marks: list[tuple[float, float, int]]) -> float:
    if len(marks) < 2 or marks[-1][0] <= marks[0][0]:
        return float("nan")
    return (marks[-1][1] - marks[0][1]) / (marks[-1][0] - marks[0][0])


def analyse(sc: Scenario, frames: Frames, sent: list[float], source: str, paced: bool) -> Result:
    texts = tokens_for(sc.tokens, sc.mode)
    if source != "".join(texts):
        raise RuntimeError("the reply on screen is not the text the source sent")
    if len(sent) != len(texts):
        raise RuntimeError(f"source sent {len(sent)} tokens, expected {len(texts)}")
    marks = frames.shown()
    if not marks or marks[-1][2] != len(texts) - 1:
        raise RuntimeError("no frame showed the reply's last token")
    highest = [m for _, _, m in marks]
    delays = [
        (marks[bisect.bisect_left(highest, i)][0] - sent_at) * 1000
        for i, sent_at in enumerate(sent)
    ]
    quarter = max(2, len(marks) // 4)
    wall = marks[-1][0] - marks[0][0]
    return Result(
        sc,
        cpu_share=_share(marks),
        cpu_first_quarter=_share(marks[:quarter]),
        cpu_last_quarter=_share(marks[-quarter:]),
        p50_ms=percentile(delays, 50),
        p95_ms=percentile(delays, 95),
        max_ms=max(delays),
        updates_per_s=(len(marks) - 1) / wall if wall > 0 else float("nan"),
        paced=paced,
    )


async def run_scenario(url: str, sc: Scenario, args: argparse.Namespace) -> Result:
    frames = Frames()
    settings = ChatSettings(busy_refresh_s=args.busy_refresh_s)
    with tempfile.TemporaryDirectory() as tmp, HistoryStore(Path(tmp) / "h.sqlite3") as store:
        app = ChatPane(driver_class=frames.driver())
        async with app.run_test(headless=False, size=tuple(args.size)) as pilot:
            await pilot.pause(0.2)
            turn = ChatTurn(
                store,
                settings,
                server_url=url,
                profile=None,
                conversation=None,
                prompt="go",
                pace=BusyPace(settings.busy_refresh_s),
                extra={"bench": sc.bench()},
            )
            renderer = TurnRenderer(app.query_one(ChatView), turn)
            paced = False
            async with aclosing(renderer.run()) as events:  # as the main screen's chat worker
                async for event in events:
                    if isinstance(event, TurnEnded):
                        if event.status != "complete":
                            raise RuntimeError(f"the reply ended {event.status}: {event.end}")
                        paced = event.paced
            await pilot.pause(0.1)
            assert renderer.view is not None
            source = renderer.view.body.source
        sent = await asyncio.to_thread(_get_sent, url)
    return analyse(sc, frames, sent, source, paced)


async def idle_share(args: argparse.Namespace, seconds: float = 3.0) -> float:
    """CPU share of the chat pane idle (prompt focused, nothing streaming)."""
    app = ChatPane(driver_class=Frames().driver())
    async with app.run_test(headless=False, size=tuple(args.size)):
        await asyncio.sleep(1.0)
        cpu, wall = time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        return (time.process_time() - cpu) / (time.monotonic() - wall)


def _get_sent(url: str) -> list[float]:
    with urllib.request.urlopen(f"{url}/sent", timeout=5) as resp:
        return [float(t) for t in json.load(resp)["sent"]]


@contextlib.contextmanager
def source_process() -> Iterator[str]:
    """The SSE source in its own process; always terminated on the way out."""
    proc = subprocess.Popen(
        [sys.executable, str(SOURCE), "--max-seconds", "900"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("PORT "):
            raise RuntimeError(f"the SSE source did not start (said {line!r})")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _targets(r: Result) -> tuple[str, str]:
    """This row's targets and whether they hold (blank where none applies)."""
    sc = r.scenario
    names, holds = [], []
    if sc.name == "prose" and sc.rate == 100:
        names.append(f"CPU ≤ {100 * CPU_TARGET:g} %")
        holds.append(r.cpu_share <= CPU_TARGET)
    if sc.rate <= 200:
        names.append(f"p95 ≤ {P95_TARGET_MS:g} ms")
        holds.append(r.p95_ms <= P95_TARGET_MS)
    return ", ".join(names), ("yes" if all(holds) else "no") if holds else ""


def report(results: list[Result], idle: float, args: argparse.Namespace) -> str:
    header = [
        "reply",
        "tokens/s",
        "tokens",
        "CPU, % of a core",
        "CPU first ¼ → last ¼",
        "delay p50",
        "delay p95",
        "delay max",
        "updates/s",
        "paced",
        "target",
        "holds",
    ]
    rows = []
    for r in results:
        sc = r.scenario
        rows.append(
            [
                sc.name,
                f"{sc.rate:g}",
                sc.tokens,
                _pct(r.cpu_share),
                f"{_pct(r.cpu_first_quarter)} → {_pct(r.cpu_last_quarter)}",
                f"{r.p50_ms:.0f} ms",
                f"{r.p95_ms:.0f} ms",
                f"{r.max_ms:.0f} ms",
                f"{r.updates_per_s:.1f}",
                "yes" if r.paced else "no",
                *_targets(r),
            ]
        )
    notes = [
        f"Chat pane idle (prompt focused, nothing streaming): {_pct(idle)} % of a core. Terminal "
        f"{args.size[0]}x{args.size[1]}, frames rendered to terminal bytes; `paced`: no CPU core "
        f"was idle, so the reply was read and drawn every {args.busy_refresh_s:g} s "
        "(`busy_refresh_s`) on purpose."
    ]
    title = (
        "Chat render: the chat pane's CPU ≤ 15 % of a core at 100 tokens/s, "
        "token-to-screen p95 ≤ 150 ms at ≤ 200 tokens/s"
    )
    return table.render(title, header, rows, notes)


async def main_async(args: argparse.Namespace) -> str:
    scenarios = SCENARIOS
    if args.quick:
        scenarios = tuple(
            dataclasses.replace(s, tokens=max(100, int(s.rate * 2))) for s in SCENARIOS
        )
    if args.only:
        scenarios = tuple(s for s in scenarios if any(k in s.name for k in args.only))
    if args.rates:
        scenarios = tuple(s for s in scenarios if s.rate in args.rates)
    results = []
    idle = await idle_share(args)
    with source_process() as url:
        for sc in scenarios:
            print(f"… {sc.name} at {sc.rate:g} tokens/s, {sc.tokens} tokens", file=sys.stderr)
            results.append(await run_scenario(url, sc, args))
            # The app just closed leaves its widgets in reference cycles (a real session has
            # one app per process): collect them, as a fresh process would not have them.
            gc.collect()
    return report(results, idle, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 s replies instead of 10-20 s")
    parser.add_argument("--size", type=int, nargs=2, default=(120, 40), metavar=("COLS", "ROWS"))
    parser.add_argument("--only", nargs="+", help="scenarios whose name contains one of these")
    parser.add_argument("--rates", nargs="+", type=float, help="only scenarios at these tokens/s")
    parser.add_argument(
        "--busy-refresh-s",
        type=float,
        default=ChatSettings().busy_refresh_s,
        help="[chat] busy_refresh_s: how often a reply is drawn while no CPU core is idle "
        "(0: at the usual pace, to measure the drawing on a busy machine)",
    )
    print(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
