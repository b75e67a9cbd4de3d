"""A run (or two runs side by side) as Markdown in the seed's layout.

Owns ``markdown`` (the seed's ``Metric | A | B | Delta`` table, the per-category statistics, the
machine and how the run was made fair) and ``compare_runs_markdown`` (``bench show RUN --vs RUN``,
with a warning when the two runs' settings differ).
The numbers come from ``table``; JSON and CSV are ``serialize``'s.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from coder_tui.core.bench.sandbox import sandbox_level
from coder_tui.core.bench.stats import Summary, summarize
from coder_tui.core.bench.table import Column, columns_of, seed_rows
from coder_tui.core.bench.types import EARLY_END_FRACTION, BenchResult
from coder_tui.core.units import format_size

SIGNIFICANCE_NOTE = (
    "(n.s.): not significant: Welch's two-sided t-test p >= 0.05, or fewer than two good "
    "samples on a side. Delta = (second - first) / first: positive means the second column is "
    "higher (as in compare mode)."
)


def _md_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return lines


def seed_table(cols: Sequence[Column], categories: Sequence[str]) -> list[str]:
    """The seed's table: Metric, one column per profile, Delta when there are two."""
    rows = seed_rows(cols, categories)
    header = ["Metric", *(c.label for c in cols)]
    two = len(cols) == 2
    if two:
        header.append("Delta")
    body = [[r.metric, *r.texts, *([r.delta_text()] if two else [])] for r in rows]
    return _md_table(header, body)


def _stat_cells(s: Summary, digits: int) -> list[str]:
    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:.{digits}f}"

    return [f(s.mean), f(s.median), f(s.stdev)]


def detail_table(cols: Sequence[Column], categories: Sequence[str]) -> list[str]:
    """Mean, median, stdev of generation and prompt tokens/s and TTFT per profile and category."""
    header = [
        "Profile", "Category", "n",
        "Gen t/s mean", "median", "stdev",
        "Prompt t/s mean", "median", "stdev",
        "TTFT s mean", "median", "stdev",
    ]  # fmt: skip
    body = []
    for col in cols:
        for cat in (None, *categories):
            gen = summarize(col.values("gen_tokens_per_s", cat))
            body.append(
                [
                    col.label,
                    cat or "all",
                    str(gen.n),
                    *_stat_cells(gen, 2),
                    *_stat_cells(summarize(col.values("prompt_tokens_per_s", cat)), 2),
                    *_stat_cells(summarize(col.values("ttft_s", cat)), 3),
                ]
            )
    return _md_table(header, body)


def early_lines(cols: Sequence[Column], max_tokens: int) -> list[str]:
    """The note on replies that hit end-of-text early, if any (``Sample.ended_early``)."""
    early = [f"{c.label}: {c.ended_early}" for c in cols if c.ended_early]
    if not early:
        return []
    cut = max(1, max_tokens // EARLY_END_FRACTION)
    return [
        "",
        f"Ended early (end-of-text before {cut} tokens; not counted, a short reply's speed is "
        f"mostly start-up): {', '.join(early)}. Fixed length avoids this.",
    ]


SETTING_NAMES: tuple[tuple[str, str], ...] = (
    ("runs", "runs"),
    ("prompt_ids", "prompts"),
    ("max_tokens", "max tokens"),
    ("fixed_length", "fixed length"),
    ("temperature", "temperature"),
    ("seed", "seed"),
    ("cache_prompt", "prompt cache"),
    ("order", "order"),
    ("warmup", "warm-up"),
)


def settings_differences(a: BenchResult, b: BenchResult) -> list[str]:
    """Each request setting two runs differ in, as ``max tokens 256 vs 64`` (empty: comparable)."""
    out = []
    for key, name in SETTING_NAMES:
        va, vb = getattr(a.settings, key), getattr(b.settings, key)
        if va != vb:
            if isinstance(va, tuple):
                va, vb = ",".join(va), ",".join(vb)
            out.append(f"{name} {va} vs {vb}")
    return out


def settings_warning(a: BenchResult, b: BenchResult) -> str | None:
    """One line saying the runs are not like for like, or ``None`` when their settings match."""
    diff = settings_differences(a, b)
    if not diff:
        return None
    return (
        f"Warning: runs #{a.run_id} and #{b.run_id} used different settings ({'; '.join(diff)}): "
        "their deltas mix those with the profiles' difference."
    )


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def machine_lines(result: BenchResult) -> list[str]:
    """The machine and software, one bullet each, like the seed's "Test System"."""
    m = result.machine
    cores = f"{m.cpu_cores or '?'} cores / {m.cpu_threads or '?'} threads"
    gpu = m.gpu + (f" (driver {m.gpu_driver})" if m.gpu_driver else "")
    return [
        f"- GPU: {gpu}",
        f"- CPU: {m.cpu_model or 'unknown'} ({cores})",
        f"- RAM: {format_size(m.ram_total_bytes, missing='?')}",
        f"- OS: {m.os}",
        f"- llama-server: {m.llama_server_version or 'unknown'}",
        f"- coder-tui: {m.coder_tui_version}",
    ]


def settings_lines(result: BenchResult) -> list[str]:
    """How the run was made fair."""
    s = result.settings
    length = (
        f"exactly {s.max_tokens} tokens (ignore_eos)"
        if s.fixed_length
        else (f"up to {s.max_tokens} tokens")
    )
    lines = [
        f"- {s.runs} runs of {len(s.prompt_ids)} prompts ({', '.join(s.categories)}) per profile",
        f"- replies {length}; temperature {s.temperature:g}, seed {s.seed}, cache_prompt false",
        f"- order: {s.order}; warm-up: {s.warmup}",
        "- speeds from llama-server's timings; time to first token from the client",
    ]
    if s.quality:
        lines.append(f"- quality sandbox: {sandbox_level()}")
    return lines


def markdown(result: BenchResult) -> str:
    """The whole report of one run."""
    cols = columns_of(result)
    title = "Benchmark" + (f" #{result.run_id}" if result.run_id is not None else "")
    names = " vs ".join(c.label for c in cols)
    out = [f"## {title}: {names} ({_when(result.started_at)})", ""]
    if result.interrupted:
        out += ["**Interrupted**: only the runs that finished are counted.", ""]
    out += seed_table(cols, result.settings.categories)
    out += ["", SIGNIFICANCE_NOTE]
    failed = [f"{c.label}: {c.failed}" for c in cols if c.failed]
    if failed:
        out += ["", f"Failed requests (not counted): {', '.join(failed)}"]
    out += early_lines(cols, result.settings.max_tokens)
    out += ["", "### Per category", ""]
    out += detail_table(cols, result.settings.categories)
    if result.quality:
        out += ["", "### Quality", ""]
        body = [
            [q.profile, q.task_id, "pass" if q.passed else "fail", q.reason] for q in result.quality
        ]
        out += _md_table(["Profile", "Task", "Result", "Reason"], body)
    out += ["", "### Hardware and configuration", ""]
    out += machine_lines(result)
    out += settings_lines(result)
    for info in result.profiles:
        out.append(f"- {info.name}: `{' '.join(info.argv[1:]) or '?'}`")
    return "\n".join(out) + "\n"


def pair_columns(a: BenchResult, b: BenchResult) -> list[tuple[Column, Column]]:
    """Same-named profiles of two runs, paired; two one-profile runs pair their only profiles."""
    ca = columns_of(a, lambda n: f"{n} #{a.run_id}")
    cb = columns_of(b, lambda n: f"{n} #{b.run_id}")
    by_name = {c.info.name: c for c in cb}
    pairs = [(c, by_name[c.info.name]) for c in ca if c.info.name in by_name]
    if not pairs and len(ca) == 1 and len(cb) == 1:
        pairs = [(ca[0], cb[0])]
    return pairs


def compare_runs_markdown(a: BenchResult, b: BenchResult) -> str:
    """``bench show A --vs B``: one seed table per profile the two runs share."""
    pairs = pair_columns(a, b)
    out = [f"## Run #{a.run_id} ({_when(a.started_at)}) vs run #{b.run_id} ({_when(b.started_at)})"]
    out.append("")
    versions = (a.machine.llama_server_version, b.machine.llama_server_version)
    out.append(f"llama-server: {versions[0] or '?'} vs {versions[1] or '?'}")
    if not pairs:
        out += ["", "The runs share no profile; nothing to compare."]
        return "\n".join(out) + "\n"
    warning = settings_warning(a, b)
    if warning is not None:
        out += ["", f"**{warning}**"]
    cats = [c for c in a.settings.categories if c in b.settings.categories]
    for left, right in pairs:
        out += ["", *seed_table([left, right], cats)]
    out += ["", SIGNIFICANCE_NOTE]
    return "\n".join(out) + "\n"
