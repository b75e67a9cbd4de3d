"""CPU use and token-to-screen delay of the chat pane while a reply streams (issue 3, acceptance 6).

Starts ``benchmarks/sse_source.py`` in its own process (loopback, synthetic tokens at a fixed rate),
runs ``CoderApp`` headless in this process attached to it, sends a prompt, and measures:

- CPU: ``time.process_time()`` of this process (the app; the source runs elsewhere) over the
  streaming window, from the reply's first update to its last, as a share of one core;
- delay: for each token, the first frame the app composes after the reply's renderer has the
  token on its widgets (a hook on the renderer's ``write`` and one on ``App._display``) minus the
  ``time.time()`` at which the source wrote it (same clock, same machine).

Headless Textual composes every frame but skips turning it into terminal bytes, so by default the
frame hook also encodes each frame (``render_segments``) to count that cost; ``--no-encode`` skips
it. Prints a Markdown table and appends it under a date header to ``docs/performance.md``.

Each scenario runs twice, side by side: ``before`` (the first renderer: every update appended to
the body Markdown, coalesced without a timer; kept in this file) and ``after`` (``ReplyStream``
and the timed ``Coalescer``), so the table's ratios come from one run on one machine's load.
Both render into today's ``MessageView`` and transcript, so widget-level savings (one layout per
resize, see ``ui/widgets/held_rows.py``) show in both rows and the ratio understates them.
Scenarios: prose at 50/100/200/1000 tokens/s, prose with pauses (text that no next token pushes
out), one growing 2,000-token code block, and a long reply of prose and code blocks.

    python benchmarks/chat_render.py                  # about 4 minutes
    python benchmarks/chat_render.py --quick          # about 40 s, shorter replies
    python benchmarks/chat_render.py --builds after --only code
    python benchmarks/chat_render.py --builds after --only prose --rates 100 --no-write
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import dataclasses
import datetime
import gc
import inspect
import json
import platform
import select
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import textual
from textual._compositor import CompositorUpdate

import coder_tui.ui.screens.main as main_module
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui.app import CoderApp
from coder_tui.ui.widgets.message import MessageView

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sse_source import tokens_for  # the source's own token texts

ROOT = Path(__file__).resolve().parent.parent
SOURCE = Path(__file__).with_name("sse_source.py")
CPU_TARGET = 0.15  # share of one core at 100 tokens/s
P95_TARGET_MS = 150.0


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
BUILDS = ("before", "after")
"""``before``: every update appended to the body Markdown, coalesced without a timer (the
renderer this benchmark first measured, kept here to compare in one run); ``after``: what the app
uses (``ReplyStream`` and ``Coalescer``)."""


@dataclass(frozen=True)
class Result:
    scenario: Scenario
    build: str
    cpu_share: float
    cpu_first_quarter: float
    cpu_last_quarter: float
    p50_ms: float
    p95_ms: float
    max_ms: float
    updates_per_s: float
    frames_per_s: float
    append_ms_first: float
    append_ms_last: float


@dataclass
class Probe:
    """Timestamps of one reply: Markdown updates (text in the widget) and composed frames."""

    encode: bool
    appends: list[tuple[float, float, int]] = field(default_factory=list)
    """(time.time(), process_time(), length of the Markdown source) after each update."""
    append_s: list[float] = field(default_factory=list)
    frames: list[float] = field(default_factory=list)
    shown: int = 0

    def hook_frames(self, app: CoderApp) -> None:
        display = app._display

        def _display(screen: Any, renderable: Any) -> None:
            if renderable is not None and not app._batch_count:
                if self.encode and isinstance(renderable, CompositorUpdate):
                    renderable.render_segments(app.console)
                self.frames.append(time.time())
            display(screen, renderable)

        app._display = _display  # type: ignore[method-assign]

    def renderer(self, base: type[Any]) -> type[Any]:
        """``base`` (what ``MainScreen`` renders a reply with) timing each ``write``."""
        probe = self

        class Probed(base):  # type: ignore[misc, valid-type]
            async def write(self, text: str) -> None:
                began = time.perf_counter()
                await super().write(text)
                probe.append_s.append(time.perf_counter() - began)
                probe.shown += len(text)
                probe.appends.append((time.time(), time.process_time(), probe.shown))

        return Probed


class LegacyReply:
    """The renderer before ``ReplyStream``: every update appended to the body Markdown."""

    def __init__(self, view: MessageView) -> None:
        self.body = view.body

    async def write(self, text: str) -> None:
        await self.body.append(text)

    async def close(self) -> None:
        pass


class LegacyCoalescer:
    """The coalescer before the timer: text waits for the next token after the interval."""

    def __init__(self, flush: Callable[[str], Any], interval_s: float = 0.1) -> None:
        self._flush, self._interval_s = flush, interval_s
        self._pending: list[str] = []
        self._last = float("-inf")

    async def add(self, text: str) -> None:
        if text:
            self._pending.append(text)
        if self._pending and time.monotonic() - self._last >= self._interval_s:
            await self.close()

    async def close(self) -> None:
        if self._pending:
            text = "".join(self._pending)
            self._pending.clear()
            self._last = time.monotonic()
            await self._flush(text)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _share(marks: list[tuple[float, float, int]]) -> float:
    if len(marks) < 2 or marks[-1][0] <= marks[0][0]:
        return float("nan")
    return (marks[-1][1] - marks[0][1]) / (marks[-1][0] - marks[0][0])


def analyse(sc: Scenario, build: str, probe: Probe, sent: list[float], source: str) -> Result:
    texts = tokens_for(sc.tokens, sc.mode)
    if source != "".join(texts):
        raise RuntimeError("the reply on screen is not the text the source sent")
    if len(sent) != len(texts):
        raise RuntimeError(f"source sent {len(sent)} tokens, expected {len(texts)}")
    lengths = [n for _, _, n in probe.appends]
    ends, total = [], 0
    for text in texts:
        total += len(text)
        ends.append(total)
    delays = []
    for end, sent_at in zip(ends, sent, strict=True):
        in_widget = probe.appends[bisect.bisect_left(lengths, end)][0]
        k = bisect.bisect_left(probe.frames, in_widget)
        shown = probe.frames[k] if k < len(probe.frames) else in_widget
        delays.append((shown - sent_at) * 1000)
    marks = probe.appends
    quarter = max(2, len(marks) // 4)
    wall = marks[-1][0] - marks[0][0]
    frames = [f for f in probe.frames if marks[0][0] <= f <= marks[-1][0]]
    slices = max(1, len(probe.append_s) // 4)
    return Result(
        sc,
        build,
        cpu_share=_share(marks),
        cpu_first_quarter=_share(marks[:quarter]),
        cpu_last_quarter=_share(marks[-quarter:]),
        p50_ms=_quantile(delays, 0.50),
        p95_ms=_quantile(delays, 0.95),
        max_ms=max(delays),
        updates_per_s=(len(marks) - 1) / wall if wall > 0 else float("nan"),
        frames_per_s=len(frames) / wall if wall > 0 else float("nan"),
        append_ms_first=1000 * sum(probe.append_s[:slices]) / slices,
        append_ms_last=1000 * sum(probe.append_s[-slices:]) / slices,
    )


async def _until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {timeout_s:g} s")
        await asyncio.sleep(0.05)


def _make_app(url: str, store: HistoryStore, metrics: bool) -> CoderApp:
    kwargs: dict[str, Any] = {"attach_url": url, "autostart": False, "store": store}
    if "sample_metrics" in inspect.signature(CoderApp).parameters:
        kwargs["sample_metrics"] = metrics
    return CoderApp(None, **kwargs)


async def run_scenario(url: str, sc: Scenario, build: str, args: argparse.Namespace) -> Result:
    probe = Probe(encode=args.encode)
    if build == "before":
        renderer, coalescer = probe.renderer(LegacyReply), LegacyCoalescer
    else:
        renderer, coalescer = probe.renderer(main_module.ReplyStream), main_module.Coalescer
    with (
        tempfile.TemporaryDirectory() as tmp,
        HistoryStore(Path(tmp) / "h.sqlite3") as store,
        _patched(main_module, ReplyStream=renderer, Coalescer=coalescer),
    ):
        app = _make_app(url, store, args.metrics)
        async with app.run_test(size=tuple(args.size)) as pilot:
            await _until(lambda: app.main is not None, 5, "the main screen")
            main = app.main
            assert main is not None
            await _until(lambda: main.server_ready, 10, "the attached source to be ready")
            probe.hook_frames(app)
            main.request_extra = {"bench": sc.bench()}
            await pilot.press(*"go", "enter")
            await _until(lambda: main.generating, 10, "the reply to start")
            await _until(lambda: not main.generating, _duration(sc) + 60, "the reply to end")
            await pilot.pause(0.1)
            source = main.query(MessageView).last().body.source
        sent = await asyncio.to_thread(_get_sent, url)
    return analyse(sc, build, probe, sent, source)


def _duration(sc: Scenario) -> float:
    pauses = sc.tokens // sc.pause_every if sc.pause_every else 0
    return sc.tokens / sc.rate + pauses * sc.pause_s


@contextlib.contextmanager
def _patched(module: Any, **names: Any) -> Any:
    saved = {name: getattr(module, name) for name in names}
    for name, value in names.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(module, name, value)


async def idle_share(url: str, args: argparse.Namespace, seconds: float = 3.0) -> float:
    """CPU share of the app attached and idle (prompt focused, nothing streaming)."""
    with tempfile.TemporaryDirectory() as tmp, HistoryStore(Path(tmp) / "h.sqlite3") as store:
        app = _make_app(url, store, args.metrics)
        async with app.run_test(size=tuple(args.size)):
            await asyncio.sleep(1.0)
            cpu, wall = time.process_time(), time.monotonic()
            await asyncio.sleep(seconds)
            return (time.process_time() - cpu) / (time.monotonic() - wall)


def _get_sent(url: str) -> list[float]:
    with urllib.request.urlopen(f"{url}/sent", timeout=5) as resp:
        return [float(t) for t in json.load(resp)["sent"]]


@contextlib.contextmanager
def source_process() -> Any:
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
    return f"{100 * x:.1f} %"


def table(results: list[Result], idle: float, args: argparse.Namespace) -> str:
    lines = [
        "| reply | build | tokens/s | tokens | app CPU (one core) | vs 15 % "
        "| CPU first ¼ → last ¼ | delay p50 | delay p95 | vs 150 ms | delay max | updates/s "
        "| frames/s | update ms first ¼ → last ¼ |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        sc = r.scenario
        lines.append(
            f"| {sc.name} | {r.build} | {sc.rate:g} | {sc.tokens} | {_pct(r.cpu_share)} "
            f"| {r.cpu_share / CPU_TARGET:.2f}× | {_pct(r.cpu_first_quarter)} → "
            f"{_pct(r.cpu_last_quarter)} | {r.p50_ms:.0f} ms | {r.p95_ms:.0f} ms "
            f"| {r.p95_ms / P95_TARGET_MS:.2f}× | {r.max_ms:.0f} ms | {r.updates_per_s:.1f} "
            f"| {r.frames_per_s:.1f} | {r.append_ms_first:.1f} → {r.append_ms_last:.1f} |"
        )
    notes = ["", f"Idle (attached, nothing streaming): {_pct(idle)} of one core."]
    for build in dict.fromkeys(r.build for r in results):
        notes.append(f"{build}: {_verdict([r for r in results if r.build == build])}.")
    notes += _ratios(results)
    notes.append(
        f"Terminal {args.size[0]}x{args.size[1]} headless, frames "
        f"{'encoded to terminal bytes' if args.encode else 'composed, not encoded'}, metrics "
        f"sampling {'on' if args.metrics else 'off'}; Python {platform.python_version()}, "
        f"Textual {textual.__version__}, {_cpu_name()}."
    )
    return "\n".join(lines + notes)


def _verdict(results: list[Result]) -> str:
    """Targets: ≤ 15 % of one core at 100 tokens/s (prose), p95 delay ≤ 150 ms at ≤ 200."""
    verdict = []
    at_100 = [r for r in results if r.scenario.rate == 100 and r.scenario.name == "prose"]
    if at_100:
        r = at_100[0]
        ok_cpu = r.cpu_share <= CPU_TARGET
        verdict.append(
            f"CPU at 100 tokens/s {_pct(r.cpu_share)}: {'meets' if ok_cpu else 'MISSES'}"
        )
    worst = max(results, key=lambda r: r.p95_ms if r.scenario.rate <= 200 else 0)
    ok_delay = worst.p95_ms <= P95_TARGET_MS
    verdict.append(
        f"worst p95 delay at ≤ 200 tokens/s ({worst.scenario.name} at {worst.scenario.rate:g}) "
        f"{worst.p95_ms:.0f} ms: {'meets' if ok_delay else 'MISSES'}"
    )
    return "; ".join(verdict)


def _ratios(results: list[Result]) -> list[str]:
    """after ÷ before per scenario, from the same run (the machine's load cancels out)."""
    out = []
    for r in results:
        if r.build != "after":
            continue
        before = [b for b in results if b.build == "before" and b.scenario == r.scenario]
        if before:
            b = before[0]
            out.append(
                f"{r.scenario.name} at {r.scenario.rate:g}: CPU ×{r.cpu_share / b.cpu_share:.2f}, "
                f"p95 ×{r.p95_ms / b.p95_ms:.2f}, frames/s ×{r.frames_per_s / b.frames_per_s:.2f}"
            )
    return ["after ÷ before: " + "; ".join(out) + "."] if out else []


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


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
    with source_process() as url:
        idle = await idle_share(url, args)
        for sc in scenarios:
            for build in args.builds:
                print(
                    f"… {build}: {sc.name} at {sc.rate:g} tokens/s, {sc.tokens} tokens",
                    file=sys.stderr,
                )
                results.append(await run_scenario(url, sc, build, args))
                # The app just closed leaves its widgets in reference cycles (a real session has
                # one app per process): collect them, as a fresh process would not have them.
                # What is left (some 30,000 objects of Textual's caches) the next app freezes
                # with its own start-up objects, as CoderApp does after its first frame.
                gc.collect()
    return table(results, idle, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 s replies instead of 10-20 s")
    parser.add_argument("--size", type=int, nargs=2, default=(120, 40), metavar=("COLS", "ROWS"))
    parser.add_argument("--no-encode", dest="encode", action="store_false")
    parser.add_argument("--no-metrics", dest="metrics", action="store_false")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "performance.md")
    parser.add_argument("--no-write", dest="write", action="store_false")
    parser.add_argument(
        "--builds", nargs="+", choices=BUILDS, default=list(BUILDS), help="renderers to compare"
    )
    parser.add_argument("--only", nargs="+", help="scenarios whose name contains one of these")
    parser.add_argument("--rates", nargs="+", type=float, help="only scenarios at these tokens/s")
    args = parser.parse_args()
    text = asyncio.run(main_async(args))
    print(text)
    if args.write:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        with args.output.open("a", encoding="utf-8") as out:
            out.write(f"\n## Chat rendering ({stamp}, `benchmarks/chat_render.py`)\n\n{text}\n")


if __name__ == "__main__":
    main()
