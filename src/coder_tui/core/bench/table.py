"""The numbers of the seed's table: per-column values and, for two columns, the delta and its mark.

Owns ``Column`` (one profile of one run: what a table column shows), ``columns_of`` and
``seed_rows``: Overall Speed, one row per category, Prompt Speed, Time to First Token, Model Size,
GPU Layers, CPU-MoE Layers, Load Time and, with ``--quality``, Quality. Only good samples count
(``Sample.ok``). Deltas are ``stats.delta_pct``'s, the second column against the first:
(B - A) / A, positive when B is higher, as in compare mode. A measured row's delta is significant
by ``stats.compare`` (Welch, p < 0.05); fixed facts (size, layers) are not tested. Sizes read in
IEC units (``core/units.py``). Formatting the rows into Markdown is ``report``'s, into JSON and
CSV ``serialize``'s. A reply that stopped at end-of-text long before ``max_tokens``
(``Sample.ended_early``) is not counted either: the column says how many there were.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from coder_tui.core.bench.prompts import CATEGORY_TITLES
from coder_tui.core.bench.stats import compare, delta_pct
from coder_tui.core.bench.types import BenchProfile, BenchResult, QualityOutcome, Sample
from coder_tui.core.units import format_size


@dataclass(frozen=True)
class Column:
    """One profile of one run."""

    label: str
    info: BenchProfile
    samples: tuple[Sample, ...]
    """Good samples only."""
    failed: int
    """Requests that did not finish or reported no timings."""
    quality: tuple[QualityOutcome, ...] = ()
    ended_early: int = 0
    """Finished requests not counted because the reply hit end-of-text early."""

    def values(self, metric: str, category: str | None = None) -> list[float]:
        """``gen_tokens_per_s``, ``prompt_tokens_per_s`` or ``ttft_s`` of the good samples."""
        out: list[float] = []
        for s in self.samples:
            if category is not None and s.category != category:
                continue
            value = getattr(s, metric)
            if value is not None:
                out.append(float(value))
        return out


def columns_of(result: BenchResult, label: Callable[[str], str] = str) -> list[Column]:
    """One column per profile of ``result``, labelled ``label(profile name)``."""
    cols = []
    for info in result.profiles:
        mine = [s for s in result.samples if s.profile == info.name]
        done = [s for s in mine if s.ok]
        good = tuple(s for s in done if not s.ended_early(result.settings.max_tokens))
        quality = tuple(q for q in result.quality if q.profile == info.name)
        cols.append(
            Column(
                label(info.name),
                info,
                good,
                len(mine) - len(done),
                quality,
                ended_early=len(done) - len(good),
            )
        )
    return cols


@dataclass(frozen=True)
class Row:
    """One metric across columns: raw numbers (for JSON), text (for tables), the delta if two."""

    metric: str
    key: str
    """Stable machine name: ``overall_gen_tokens_per_s``, ``category.coding``, ``model_size_bytes``."""
    unit: str
    numbers: tuple[float | None, ...]
    texts: tuple[str, ...]
    delta_pct: float | None = None
    p_value: float | None = None
    significant: bool | None = None
    """``None``: a fixed fact, not a measurement (no test applies)."""

    def delta_text(self) -> str:
        """The seed's Delta cell (B against A): ``+84.7%``, ``-21%``; ``(n.s.)`` when not
        significant."""
        if self.delta_pct is None:
            return "-"
        d = self.delta_pct
        text = f"{d:+.1f}%" if self.significant is not None else f"{d:+.0f}%"
        return text + (" (n.s.)" if self.significant is False else "")


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _tps(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f} t/s"


def _secs(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f} s"


def _load(v: float | None) -> str:
    return "-" if v is None else (f"~{v:.0f}s" if v >= 10 else f"~{v:.1f}s")


def _measured(
    cols: Sequence[Column],
    metric: str,
    key: str,
    title: str,
    fmt: Callable[[float | None], str],
    category: str | None = None,
) -> Row:
    series = [c.values(metric, category) for c in cols]
    means = tuple(_mean(v) for v in series)
    row = Row(title, key, metric, means, tuple(fmt(m) for m in means))
    if len(cols) != 2:
        return row
    cmp = compare(series[0], series[1])
    return Row(title, key, metric, means, row.texts, cmp.delta_pct, cmp.p_value, cmp.significant)


def _fact(
    cols: Sequence[Column],
    key: str,
    title: str,
    unit: str,
    numbers: Sequence[float | None],
    texts: Sequence[str],
) -> Row:
    delta = delta_pct(numbers[0], numbers[1]) if len(cols) == 2 else None
    return Row(title, key, unit, tuple(numbers), tuple(texts), delta, None, None)


def seed_rows(cols: Sequence[Column], categories: Sequence[str]) -> list[Row]:
    """The seed's rows (plus prompt speed, TTFT and quality) for ``cols``."""
    rows = [_measured(cols, "gen_tokens_per_s", "overall_gen_tokens_per_s", "Overall Speed", _tps)]
    for cat in categories:
        title = CATEGORY_TITLES.get(cat, cat)
        rows.append(_measured(cols, "gen_tokens_per_s", f"category.{cat}", title, _tps, cat))
    rows.append(
        _measured(cols, "prompt_tokens_per_s", "overall_prompt_tokens_per_s", "Prompt Speed", _tps)
    )
    rows.append(_measured(cols, "ttft_s", "overall_ttft_s", "Time to First Token", _secs))
    sizes = [c.info.model_size_bytes for c in cols]
    rows.append(
        _fact(
            cols,
            "model_size_bytes",
            "Model Size",
            "bytes",
            sizes,
            [format_size(s, missing="?") for s in sizes],
        )
    )
    gpu = [c.info.gpu_layers for c in cols]
    gpu_texts = [
        "?" if c.info.gpu_layers is None else f"{c.info.gpu_layers} / {c.info.n_layers}"
        for c in cols
    ]
    rows.append(_fact(cols, "gpu_layers", "GPU Layers", "layers", gpu, gpu_texts))
    moe = [c.info.cpu_moe_layers for c in cols]
    moe_texts = ["?" if m is None else str(m) for m in moe]
    rows.append(_fact(cols, "cpu_moe_layers", "CPU-MoE Layers", "layers", moe, moe_texts))
    loads = [list(c.info.load_times_s) for c in cols]
    means = tuple(_mean(v) for v in loads)
    load_row = Row("Load Time", "load_time_s", "s", means, tuple(_load(m) for m in means))
    if len(cols) == 2:
        cmp = compare(loads[0], loads[1])
        load_row = Row(
            "Load Time",
            "load_time_s",
            "s",
            means,
            load_row.texts,
            cmp.delta_pct,
            cmp.p_value,
            cmp.significant,
        )
    rows.append(load_row)
    if any(c.quality for c in cols):
        rates = [
            (sum(q.passed for q in c.quality) / len(c.quality)) if c.quality else None for c in cols
        ]
        texts = [
            f"{sum(q.passed for q in c.quality)}/{len(c.quality)} passed" if c.quality else "-"
            for c in cols
        ]
        rows.append(_fact(cols, "quality_pass_rate", "Quality", "ratio", rates, texts))
    return rows
