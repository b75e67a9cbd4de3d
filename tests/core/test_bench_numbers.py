"""One set of numbers (issue 25): compare and bench share request settings, defaults, the delta
convention and the significance mark; ``bench show --vs`` warns when two runs' settings differ;
replies cut short by end-of-text are not counted."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import pytest
from test_bench_support import sample, two_profile_result

import coder_tui.__main__ as cli_main
from coder_tui.cli import bench as bench_cli
from coder_tui.core.bench.compare import CompareResult, CompareRun, to_markdown
from coder_tui.core.bench.compare_store import as_bench_result
from coder_tui.core.bench.report import compare_runs_markdown, markdown, settings_warning
from coder_tui.core.bench.store import BenchStore
from coder_tui.core.bench.table import columns_of
from coder_tui.core.bench.types import (
    DEFAULT_FIXED_LENGTH,
    DEFAULT_MAX_TOKENS,
    DEFAULT_PROMPTS_PER_CATEGORY,
    DEFAULT_RUNS,
    Sample,
)
from coder_tui.core.paths import app_paths

FAST = [21.5, 21.8, 22.0, 21.7, 21.9, 21.6]
SLOW = [11.6, 11.9, 11.8, 11.7, 11.9, 11.5]


def _bench_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    bench_cli.register(sub, argparse.ArgumentParser(add_help=False))
    return parser.parse_args(["bench", *argv])


def test_cli_bench_defaults_are_the_shared_ones() -> None:
    """The CLI ran 5 runs of 256 tokens, not fixed; the TUI 2 of 64, fixed."""
    args = _bench_args()
    assert (args.runs, args.max_tokens, args.fixed_length) == (
        DEFAULT_RUNS,
        DEFAULT_MAX_TOKENS,
        DEFAULT_FIXED_LENGTH,
    )
    assert DEFAULT_FIXED_LENGTH is True
    assert args.prompts_per_category == DEFAULT_PROMPTS_PER_CATEGORY and args.categories is None
    assert _bench_args("--no-fixed-length").fixed_length is False


def _run(profile: str, speed: float, tokens: int = 128) -> CompareRun:
    return CompareRun(profile, "x", "done", 0.1, 500.0, speed, tokens, None)


def test_compare_marks_deltas_as_the_bench_does() -> None:
    """Compare showed deltas with no significance mark."""
    one = CompareResult("p", "a", "b", (_run("a", 20.0),), (_run("b", 10.0),))
    assert one.delta_text("generation_tokens_per_s") == "-50.0 % (n.s.)"  # one run a side
    many = CompareResult(
        "p",
        "a",
        "b",
        tuple(_run("a", v) for v in FAST),
        tuple(_run("b", v) for v in SLOW),
    )
    text = many.delta_text("generation_tokens_per_s")
    assert text.startswith("-4") and "n.s." not in text  # (B - A) / A, significant
    md = to_markdown(many)
    assert "exactly 128 tokens (ignore_eos)" in md and "(n.s.): not significant" in md


def test_compare_is_fixed_length_by_default_and_stored_so() -> None:
    """Compare was not fixed-length: 8 vs 53 tokens gave +562.5 % next to the speed delta."""
    result = CompareResult("p", "a", "b", (_run("a", 20.0),), (_run("b", 10.0),))
    assert result.fixed_length and result.max_tokens == DEFAULT_MAX_TOKENS
    stored = as_bench_result(
        result, {}, max_tokens=result.max_tokens, llama_server_version=None, started_at=0.0
    )
    assert stored.settings.fixed_length is True


def _early(profile: str, speed: float) -> Sample:
    return replace(sample(profile, "coding", speed), predicted_n=3, finish_reason="stop")


def test_replies_cut_short_by_end_of_text_are_not_counted() -> None:
    """Runs without fixed length kept 3-7 t/s samples from early end-of-text."""
    base = two_profile_result(FAST, SLOW)
    loose = replace(
        base,
        settings=replace(base.settings, fixed_length=False, max_tokens=256),
        samples=(*base.samples, _early("iq2_xxs", 3.0), _early("iq2_xxs", 7.0)),
    )
    cols = columns_of(loose)
    assert [c.ended_early for c in cols] == [2, 0]
    assert min(cols[0].values("gen_tokens_per_s")) == min(FAST)  # the 3 and 7 t/s are out
    md = markdown(loose)
    assert "Ended early (end-of-text before 64 tokens; not counted" in md
    assert "iq2_xxs: 2" in md
    # A long natural reply is a good sample; a fixed-length run never ends early.
    assert not replace(sample("a", "coding", 20.0), finish_reason="stop").ended_early(64)
    assert "Ended early" not in markdown(base)


def test_show_vs_warns_when_settings_differ() -> None:
    a = replace(two_profile_result(FAST, SLOW), run_id=2)
    b = replace(a, run_id=3, settings=replace(a.settings, max_tokens=256, fixed_length=False))
    assert settings_warning(a, a) is None
    warning = settings_warning(b, a)
    assert warning is not None
    assert "max tokens 256 vs 64" in warning and "fixed length False vs True" in warning
    assert warning in compare_runs_markdown(b, a)
    assert "Warning" not in compare_runs_markdown(a, a)


def test_cli_show_vs_prints_the_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    a = two_profile_result(FAST, SLOW)
    b = replace(a, settings=replace(a.settings, runs=5, max_tokens=256))
    db = app_paths().history_db
    db.parent.mkdir(parents=True, exist_ok=True)
    with BenchStore(db) as store:
        ida, idb = store.save(a), store.save(b)
    assert cli_main.main(["bench", "show", str(idb), "--vs", str(ida)]) == 0
    out, err = capsys.readouterr()
    assert (
        f"runs #{idb} and #{ida} used different settings (runs 5 vs 2; max tokens 256 vs 64)" in err
    )
    assert "different settings" in out
