"""``coder-tui bench``: run the benchmark headless, list stored runs, show and compare them.

Owns the argument parser, the terminal progress line (stderr: one line updated in place on a
terminal, plain lines otherwise), Ctrl+C handling (the server is stopped, finished runs are kept,
printed and saved; exit 130) and writing the report. The work is ``core.bench``'s; heavy modules
are imported inside ``run`` so ``coder-tui --version`` stays fast.

    coder-tui bench --profiles iq2_xxs,iq3_xxs [--runs 3] [--categories coding,writing]
        [--prompts-per-category N] [--max-tokens N] [--no-fixed-length] [--seed N] [--quality]
        [--format md|json|csv] [--out FILE] [--no-save]
    coder-tui bench history [--limit N]
    coder-tui bench show RUN [--vs RUN] [--format md|json|csv]
"""

from __future__ import annotations

import argparse
import sys
from typing import IO, TYPE_CHECKING, Any

from coder_tui.core.sanitize import sanitize_line

if TYPE_CHECKING:
    from coder_tui.core.bench.runner import BenchEvent
    from coder_tui.core.bench.types import BenchResult


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def register(subparsers: Any, common_parent: argparse.ArgumentParser) -> None:
    """Add ``bench`` (and its ``history`` and ``show`` actions) to the CLI."""
    from coder_tui.core.bench.types import (
        DEFAULT_FIXED_LENGTH,
        DEFAULT_MAX_TOKENS,
        DEFAULT_PROMPTS_PER_CATEGORY,
        DEFAULT_RUNS,
    )

    p = subparsers.add_parser(
        "bench",
        parents=[common_parent],
        help="benchmark profiles fairly and print one table comparing them (speeds per "
        "category, deltas against the first profile)",
        description="Benchmark profiles (interleaved A B A B, temperature 0, fixed seed, no "
        "prompt cache, speeds from llama-server's timings) and print mean/median/stdev per "
        "category with deltas marked (n.s.) when not significant (Welch's t-test, p >= 0.05).",
    )
    p.add_argument("--profiles", metavar="A,B", help="profiles to compare (default: the default)")
    p.add_argument(
        "--runs",
        type=_positive,
        default=DEFAULT_RUNS,
        help=f"rounds over all profiles ({DEFAULT_RUNS}, as the TUI's bench)",
    )
    p.add_argument("--categories", metavar="LIST", help="coding,writing,debugging,reasoning")
    p.add_argument(
        "--prompts-per-category",
        type=_positive,
        metavar="N",
        default=DEFAULT_PROMPTS_PER_CATEGORY,
        help=f"the first N prompts of each category ({DEFAULT_PROMPTS_PER_CATEGORY}, as the TUI's "
        "bench)",
    )
    p.add_argument(
        "--max-tokens",
        type=_positive,
        default=DEFAULT_MAX_TOKENS,
        help=f"reply length ({DEFAULT_MAX_TOKENS})",
    )
    p.add_argument(
        "--fixed-length",
        action=argparse.BooleanOptionalAction,
        default=DEFAULT_FIXED_LENGTH,
        help="every reply exactly --max-tokens (ignore_eos; the default, as in the TUI and "
        "compare); --no-fixed-length lets replies stop at end-of-text",
    )
    p.add_argument("--seed", type=int, default=42, help="sampling seed (42)")
    p.add_argument("--quality", action="store_true", help="also run the coding tasks' unit tests")
    p.add_argument(
        "--format",
        choices=("md", "json", "csv"),
        default="md",
        help="report format: md (Markdown table, default), json or csv",
    )
    p.add_argument("--out", metavar="FILE", help="write the report here instead of stdout")
    p.add_argument("--no-save", action="store_true", help="do not store the run in the history")
    p.set_defaults(func=run, bench_command=None)
    sub = p.add_subparsers(dest="bench_command", metavar="ACTION")
    hist = sub.add_parser("history", parents=[common_parent], help="list stored runs")
    hist.add_argument("--limit", type=_positive, default=50, help="newest N runs (default 50)")
    show = sub.add_parser("show", parents=[common_parent], help="print a stored run")
    show.add_argument("run_id", type=int, metavar="RUN", help="run number (see bench history)")
    show.add_argument("--vs", type=int, metavar="RUN", help="compare with this run")
    show.add_argument(
        "--format",
        choices=("md", "json", "csv"),
        default="md",
        help="report format: md (Markdown table, default), json or csv",
    )
    show.add_argument("--out", metavar="FILE", help="write the report here instead of stdout")


def run(args: argparse.Namespace) -> int:
    """Dispatch ``bench``, ``bench history`` and ``bench show``."""
    if args.bench_command == "history":
        return _history(args)
    if args.bench_command == "show":
        return _show(args)
    return _bench(args)


def _store() -> Any:
    from coder_tui.core.bench.store import BenchStore
    from coder_tui.core.paths import app_paths

    return BenchStore(app_paths().history_db)


def _emit(text: str, out: str | None) -> None:
    if out:
        from pathlib import Path

        from coder_tui.core.atomic import write_text_atomic

        write_text_atomic(Path(out).expanduser(), text, mode=0o644)
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def render(result: BenchResult, fmt: str) -> str:
    """The report of ``result`` in ``fmt`` (md, json or csv)."""
    from coder_tui.core.bench import report, serialize

    if fmt == "json":
        return serialize.to_json(result)
    if fmt == "csv":
        return serialize.to_csv(result)
    return report.markdown(result)


def _history(args: argparse.Namespace) -> int:
    import time

    with _store() as store:
        runs = store.runs(args.limit)
    if not runs:
        print("no bench runs stored yet; run `coder-tui bench`")
        return 0
    print(f"{'RUN':>4}  {'STARTED':16}  {'SAMPLES':>7}  {'LLAMA-SERVER':14}  PROFILES")
    for r in runs:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.started_at))
        flag = " (interrupted)" if r.interrupted else ""
        version = sanitize_line(r.llama_server_version or "?")[:14]
        print(
            f"{r.run_id:>4}  {when:16}  {r.samples:>7}  {version:14}  {','.join(r.profiles)}{flag}"
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    from coder_tui.core.bench.report import compare_runs_markdown

    with _store() as store:
        result = store.load(args.run_id)
        other = store.load(args.vs) if args.vs is not None else None
    if other is None:
        _emit(render(result, args.format), args.out)
    elif args.format != "md":
        from coder_tui.core.errors import UserError

        raise UserError("--vs prints Markdown only; use --format json on each run instead")
    else:
        from coder_tui.core.bench.report import settings_warning

        warning = settings_warning(result, other)
        if warning is not None:
            print(f"bench: {warning}", file=sys.stderr)
        _emit(compare_runs_markdown(result, other), args.out)
    return 0


class ProgressLine:
    """Progress with ETA on ``stream``: one line rewritten in place on a TTY, else plain lines."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._width = 0

    def show(self, text: str) -> None:
        if self.tty:
            pad = max(self._width - len(text), 0)
            # The CLI's output filter shows every written "\r"; it has a method for this one.
            back = getattr(self.stream, "carriage_return", None)
            if back is not None:
                back()
            else:
                self.stream.write("\r")
            self.stream.write(text + " " * pad)
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0

    def event(self, event: BenchEvent) -> None:
        """Describe one runner event."""
        from coder_tui.core.bench import runner as r

        if isinstance(event, r.Planned):
            self.show(f"bench: {event.total_requests} requests, {len(event.order)} loads")
        elif isinstance(event, r.Loading):
            self.show(f"bench: round {event.round + 1}: loading {event.profile} ...")
        elif isinstance(event, r.Loaded):
            self.show(f"bench: {event.profile} loaded in {event.load_time_s:.1f} s")
        elif isinstance(event, (r.Measured, r.QualityGraded)):
            p = event.progress
            eta = "?" if p.eta_s is None else _clock(p.eta_s)
            if isinstance(event, r.Measured):
                s = event.sample
                what = f"{s.profile} {s.prompt_id} {s.gen_tokens_per_s:.1f} t/s"
                if not s.ok:
                    what = f"{s.profile} {s.prompt_id} {s.status}"
            else:
                o = event.outcome
                what = f"{o.profile} quality {o.task_id}: {o.reason}"
            bar = _bar(p.done, p.total)
            self.show(f"bench {bar} {p.done}/{p.total} ETA {eta}  {what}")


def _clock(seconds: float) -> str:
    s = round(seconds)
    return (
        f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )


def _bar(done: int, total: int, width: int = 20) -> str:
    filled = int(width * done / total) if total else width
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _bench(args: argparse.Namespace) -> int:
    import asyncio

    from coder_tui.commands import _load
    from coder_tui.core.bench.prompts import parse_categories, select_prompts
    from coder_tui.core.bench.types import Settings
    from coder_tui.core.errors import UserError

    config = _load(args)
    names = [n.strip() for n in (args.profiles or "").split(",") if n.strip()]
    profiles = [config.profile(n) for n in names] if names else [config.profile(None)]
    if len({p.name for p in profiles}) != len(profiles):
        raise UserError("--profiles names a profile twice")
    user = config.bench.prompts
    categories = parse_categories(args.categories, user)
    prompts = select_prompts(categories, args.prompts_per_category, user)
    settings = Settings(
        runs=args.runs,
        categories=categories,
        prompt_ids=tuple(p.id for p in prompts),
        max_tokens=args.max_tokens,
        fixed_length=args.fixed_length,
        seed=args.seed,
        quality=args.quality,
    )
    result, interrupted = asyncio.run(_run_async(config, profiles, prompts, settings))
    if not result.samples and not result.quality:
        print("bench: interrupted before any request finished; nothing kept", file=sys.stderr)
        return 130 if interrupted else 1
    if not args.no_save:
        from dataclasses import replace

        with _store() as store:
            result = replace(result, run_id=store.save(result))
        print(f"bench: saved as run #{result.run_id}", file=sys.stderr)
    _emit(render(result, args.format), args.out)
    return 130 if interrupted else 0


async def _run_async(
    config: Any, profiles: list[Any], prompts: Any, settings: Any
) -> tuple[BenchResult, bool]:
    """Run the benchmark; Ctrl+C cancels it (the runner stops the server). (result, interrupted)"""
    import asyncio
    import contextlib
    import signal

    from coder_tui.core.bench.runner import BenchRun, Finished, ServerBackend
    from coder_tui.core.paths import app_paths

    paths = app_paths()
    backend = ServerBackend(config.server, log_dir=paths.log_dir, cache_dir=paths.cache_dir)
    bench = BenchRun(profiles, prompts, settings, backend)
    line = ProgressLine(sys.stderr)
    finished: list[BenchResult] = []

    async def consume() -> None:
        async with contextlib.aclosing(bench.events()) as events:
            async for event in events:
                if isinstance(event, Finished):
                    finished.append(event.result)
                else:
                    line.event(event)

    task = asyncio.create_task(consume())
    loop = asyncio.get_running_loop()
    presses: list[int] = []

    def on_sigint() -> None:
        # The first Ctrl+C cancels; later ones must not cut short the server's stop. The runner's
        # own flag backs the task cancel up: a cancel that lands while ServerManager waits for a
        # stopping server (a swap) is absorbed there, and the flag then ends the run after the
        # request in flight.
        if not presses:
            bench.cancel()
            task.cancel()
        presses.append(1)

    loop.add_signal_handler(signal.SIGINT, on_sigint)
    try:
        await task
    except asyncio.CancelledError:
        pass
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        line.done()
    if finished and not finished[0].interrupted:
        return finished[0], False
    print("bench: interrupted; the server is stopped, finished runs are kept", file=sys.stderr)
    return bench.result(), True
