"""A run serialized: as JSON (documented by ``docs/bench-schema.json``) and as CSV.

Owns ``to_json_dict``/``to_json`` (everything: machine, settings, per-profile statistics, the
seed's rows with deltas for two profiles, ``delta_pct`` = (b - a) / a as everywhere, quality,
every raw sample) and ``to_csv`` (one row per profile, category and metric with n, mean, median,
stdev and the 95 % interval). The numbers come from ``stats`` and ``table``; Markdown is
``report``'s.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any

from coder_tui.core.bench.report import SIGNIFICANCE_NOTE
from coder_tui.core.bench.stats import Summary, summarize
from coder_tui.core.bench.table import Column, columns_of, seed_rows
from coder_tui.core.bench.types import BenchResult

SCHEMA_ID = "coder-tui-bench/2"
"""/2: ``delta_pct`` is (b - a) / a, the project's one delta convention (/1 had (a - b) / b)."""
METRICS = ("gen_tokens_per_s", "prompt_tokens_per_s", "ttft_s")


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="seconds")


def _summary(s: Summary) -> dict[str, Any]:
    return asdict(s)


def _stats(col: Column, category: str | None) -> dict[str, Any]:
    return {m: _summary(summarize(col.values(m, category))) for m in METRICS}


def _profile(col: Column, categories: tuple[str, ...]) -> dict[str, Any]:
    info = col.info
    quality = None
    if col.quality:
        passed = sum(q.passed for q in col.quality)
        quality = {
            "passed": passed,
            "total": len(col.quality),
            "pass_rate": passed / len(col.quality),
            "tasks": [
                {"task_id": q.task_id, "passed": q.passed, "reason": q.reason} for q in col.quality
            ],
        }
    return {
        "name": info.name,
        "model_path": info.model_path,
        "model_size_bytes": info.model_size_bytes,
        "n_layers": info.n_layers,
        "gpu_layers": info.gpu_layers,
        "cpu_moe_layers": info.cpu_moe_layers,
        "argv": list(info.argv),
        "load_times_s": list(info.load_times_s),
        "load_time_s": _summary(summarize(info.load_times_s)),
        "good_samples": len(col.samples),
        "failed_samples": col.failed,
        "overall": _stats(col, None),
        "categories": {cat: _stats(col, cat) for cat in categories},
        "quality": quality,
    }


def to_json_dict(result: BenchResult) -> dict[str, Any]:
    """The run as plain JSON values."""
    cols = columns_of(result)
    cats = result.settings.categories
    comparison = None
    if len(cols) == 2:
        comparison = {
            "a": cols[0].label,
            "b": cols[1].label,
            "rule": SIGNIFICANCE_NOTE,
            "rows": [
                {
                    "metric": r.metric,
                    "key": r.key,
                    "unit": r.unit,
                    "a": r.numbers[0],
                    "b": r.numbers[1],
                    "a_text": r.texts[0],
                    "b_text": r.texts[1],
                    "delta_pct": r.delta_pct,
                    "p_value": r.p_value,
                    "significant": r.significant,
                }
                for r in seed_rows(cols, cats)
            ],
        }
    settings = asdict(result.settings)
    settings["categories"] = list(result.settings.categories)
    settings["prompt_ids"] = list(result.settings.prompt_ids)
    return {
        "schema": SCHEMA_ID,
        "run_id": result.run_id,
        "started_at": _iso(result.started_at),
        "finished_at": _iso(result.finished_at),
        "interrupted": result.interrupted,
        "machine": asdict(result.machine),
        "settings": settings,
        "profiles": [_profile(c, cats) for c in cols],
        "comparison": comparison,
        "samples": [asdict(s) for s in result.samples],
    }


def to_json(result: BenchResult) -> str:
    """``to_json_dict`` as indented text."""
    return json.dumps(to_json_dict(result), indent=2) + "\n"


CSV_HEADER = (
    "run_id", "profile", "category", "metric", "n", "mean", "median", "stdev", "ci95_low",
    "ci95_high",
)  # fmt: skip


def to_csv(result: BenchResult) -> str:
    """One row per profile x (``all`` and each category) x metric."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for col in columns_of(result):
        for cat in (None, *result.settings.categories):
            for metric in METRICS:
                s = summarize(col.values(metric, cat))
                writer.writerow(
                    [
                        "" if result.run_id is None else result.run_id,
                        col.label,
                        cat or "all",
                        metric,
                        s.n,
                        *(
                            "" if v is None else f"{v:.6g}"
                            for v in (s.mean, s.median, s.stdev, s.ci95_low, s.ci95_high)
                        ),
                    ]
                )
    return buf.getvalue()
