"""Compare two profiles on the same prompt: run it on A, swap, run it on B, side by side.

Owns the compare loop (the bench's request settings: temperature 0, a fixed seed, the same
``max_tokens``, no prompt cache, a fixed length by default: ``types.DEFAULT_*``), its statistics
over repeats (mean and spread), a unified diff of the two replies, and the Markdown report. Deltas
are ``stats.delta_pct``'s: (B - A) / A, marked ``(n.s.)`` by ``stats.compare`` as in the bench
report.
Swapping is ``server/swap.py``'s; streaming is ``chat/client.py``'s. Progress is an async
generator of typed events the UI iterates.
"""

from __future__ import annotations

import difflib
import statistics
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from coder_tui.core.bench.stats import compare, delta_note
from coder_tui.core.bench.types import DEFAULT_FIXED_LENGTH, DEFAULT_MAX_TOKENS
from coder_tui.core.chat.client import ChatClient, StreamEnd
from coder_tui.core.config.loader import Profile
from coder_tui.core.sanitize import sanitize
from coder_tui.core.server.process import ServerManager
from coder_tui.core.server.swap import Swapper, SwapResult

SEED = 42


@dataclass(frozen=True)
class CompareRun:
    """One reply on one profile."""

    profile: str
    text: str
    status: str
    ttft_s: float | None
    prompt_tokens_per_s: float | None
    generation_tokens_per_s: float | None
    tokens: int | None
    load_time_s: float | None


@dataclass(frozen=True)
class Stat:
    mean: float | None
    stdev: float | None
    n: int


def stat(values: Sequence[float | None]) -> Stat:
    xs = [v for v in values if v is not None]
    if not xs:
        return Stat(None, None, 0)
    return Stat(statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0, len(xs))


METRICS: tuple[tuple[str, str], ...] = (
    ("generation_tokens_per_s", "generation tok/s"),
    ("prompt_tokens_per_s", "prompt tok/s"),
    ("ttft_s", "time to first token (s)"),
    ("tokens", "tokens"),
    ("load_time_s", "load time (s)"),
)


@dataclass(frozen=True)
class CompareResult:
    prompt: str
    a: str
    b: str
    runs_a: tuple[CompareRun, ...] = ()
    runs_b: tuple[CompareRun, ...] = ()
    swaps: tuple[SwapResult, ...] = field(default_factory=tuple)

    fixed_length: bool = DEFAULT_FIXED_LENGTH
    max_tokens: int = DEFAULT_MAX_TOKENS

    def stats(self, metric: str) -> tuple[Stat, Stat, float | None]:
        sa, sb, delta, _ = self.compared(metric)
        return sa, sb, delta

    def compared(self, metric: str) -> tuple[Stat, Stat, float | None, bool]:
        """A's and B's statistics, the delta (B - A) / A in percent and whether it is
        significant (``stats.compare``: Welch, p < 0.05, two runs a side at least)."""
        va = [float(v) for r in self.runs_a if (v := getattr(r, metric)) is not None]
        vb = [float(v) for r in self.runs_b if (v := getattr(r, metric)) is not None]
        c = compare(va, vb)
        return stat(va), stat(vb), c.delta_pct, c.significant

    def delta_text(self, metric: str) -> str:
        """The delta cell, as in the bench report: ``+12.3 %``, ``(n.s.)`` when not significant."""
        _, _, delta, significant = self.compared(metric)
        if delta is None:
            return "–"
        return f"{delta:+.1f} %" + ("" if significant else " (n.s.)")


@dataclass(frozen=True)
class CompareProgress:
    """Where the compare is: ``step`` (1-based) of ``steps``, and what it does now."""

    step: int
    steps: int
    message: str


@dataclass(frozen=True)
class CompareFailed:
    message: str


CompareEvent = CompareProgress | CompareRun | CompareResult | CompareFailed


def unified_diff(a_text: str, b_text: str, a_name: str = "A", b_name: str = "B") -> str:
    """The two replies as a unified diff (empty when identical)."""
    lines = difflib.unified_diff(
        a_text.splitlines(), b_text.splitlines(), fromfile=a_name, tofile=b_name, lineterm=""
    )
    return "\n".join(lines)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def to_markdown(result: CompareResult) -> str:
    """The comparison as a Markdown report: the numbers table, then both replies and the diff."""
    n = len(result.runs_a)
    out = [
        f"# {result.a} vs {result.b}",
        "",
        f"Prompt: {result.prompt!r}; {n} run(s) each, {_length(result)}, temperature 0, "
        f"seed {SEED}.",
        "",
        f"| metric | {result.a} | {result.b} | delta |",
        "| --- | --- | --- | --- |",
    ]
    for key, label in METRICS:
        sa, sb, _ = result.stats(key)
        spread_a = f" ± {_fmt(sa.stdev)}" if sa.n > 1 else ""
        spread_b = f" ± {_fmt(sb.stdev)}" if sb.n > 1 else ""
        delta = result.delta_text(key)
        out.append(f"| {label} | {_fmt(sa.mean)}{spread_a} | {_fmt(sb.mean)}{spread_b} | {delta} |")
    out += ["", delta_note(result.a, result.b) + " " + SIGNIFICANCE]
    last_a = result.runs_a[-1].text if result.runs_a else ""
    last_b = result.runs_b[-1].text if result.runs_b else ""
    out += ["", f"## {result.a}", "", last_a, "", f"## {result.b}", "", last_b, ""]
    diff = unified_diff(last_a, last_b, result.a, result.b)
    out += ["## diff", "", "```diff", diff or "(identical)", "```", ""]
    return sanitize("\n".join(out))  # model text: no escapes or bidi controls in the file


def _length(result: CompareResult) -> str:
    n = result.max_tokens
    return f"exactly {n} tokens (ignore_eos)" if result.fixed_length else f"up to {n} tokens"


SIGNIFICANCE = "(n.s.): not significant (Welch's t-test p >= 0.05, or fewer than two runs a side)."


async def _one(
    url: str,
    prompt: str,
    profile: str,
    max_tokens: int,
    load_time_s: float | None,
    fixed_length: bool,
) -> CompareRun:
    end: StreamEnd | None = None
    async with ChatClient(url) as client:
        stream = client.stream_chat(
            [{"role": "user", "content": prompt}],
            max_tokens=max_tokens,
            temperature=0.0,
            seed=SEED,
            extra={"cache_prompt": False, **({"ignore_eos": True} if fixed_length else {})},
        )
        async for event in stream:
            if isinstance(event, StreamEnd):
                end = event
    assert end is not None
    t = end.timings
    return CompareRun(
        profile=profile,
        text=end.text,
        status=end.status,
        ttft_s=end.ttft_s,
        prompt_tokens_per_s=t.prompt_per_second if t else None,
        generation_tokens_per_s=t.predicted_per_second if t else None,
        tokens=t.predicted_n if t else (end.usage.completion_tokens if end.usage else None),
        load_time_s=load_time_s,
    )


async def run_compare(
    swapper: Swapper,
    manager: ServerManager,
    a: Profile,
    b: Profile,
    prompt: str,
    *,
    repeats: int = 1,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    fixed_length: bool = DEFAULT_FIXED_LENGTH,
    return_to: Profile | None = None,
    on_swap: Callable[[SwapResult], None] | None = None,
) -> AsyncIterator[CompareEvent]:
    """Run ``prompt`` ``repeats`` times on A, swap, the same on B; yield progress and runs, then
    the result. Swaps back to ``return_to`` at the end (if given and not already serving)."""
    steps = 2 * repeats + 2
    step = 0
    runs: dict[str, list[CompareRun]] = {a.name: [], b.name: []}
    swaps: list[SwapResult] = []
    for profile in (a, b):
        step += 1
        yield CompareProgress(step, steps, f"switching to {profile.name}")
        swap = await swapper.swap(profile)
        swaps.append(swap)
        if on_swap is not None:
            on_swap(swap)
        if not swap.ok or manager.profile_name != profile.name:
            yield CompareFailed(f"cannot serve {profile.name}: {swap.error or 'swap failed'}")
            return
        load = manager.load_time_s if not swap.unchanged else None
        for i in range(repeats):
            step += 1
            yield CompareProgress(step, steps, f"{profile.name}: run {i + 1} of {repeats}")
            run = await _one(manager.url, prompt, profile.name, max_tokens, load, fixed_length)
            runs[profile.name].append(run)
            yield run
            if run.status != "done":
                yield CompareFailed(f"{profile.name}: reply ended {run.status}")
                return
    yield CompareResult(
        prompt,
        a.name,
        b.name,
        tuple(runs[a.name]),
        tuple(runs[b.name]),
        tuple(swaps),
        fixed_length=fixed_length,
        max_tokens=max_tokens,
    )
    if return_to is not None and manager.profile_name != return_to.name:
        swap = await swapper.swap(return_to)
        if on_swap is not None:
            on_swap(swap)
