"""The bench statistics: summaries, the t distribution, Welch's test and the significance mark."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from coder_tui.core.bench.stats import (
    betainc,
    compare,
    delta_pct,
    summarize,
    t_quantile,
    t_two_sided_p,
    welch_p,
)
from coder_tui.core.bench.table import Row


def test_summary_of_known_values() -> None:
    s = summarize([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])
    assert s.n == 8 and s.mean == 5.0 and s.median == 4.5
    assert s.stdev == pytest.approx(2.138089935)
    half = 2.364624 * 2.138089935 / math.sqrt(8)  # t(0.975, 7)
    assert s.ci95_low == pytest.approx(5 - half, rel=1e-5)
    assert s.ci95_high == pytest.approx(5 + half, rel=1e-5)


def test_summary_of_few_values() -> None:
    assert summarize([]).mean is None and summarize([]).n == 0
    one = summarize([3.0])
    assert one.mean == 3.0 and one.median == 3.0 and one.stdev is None and one.ci95_low is None


@pytest.mark.parametrize(
    ("t", "df", "p"),
    [(2.0, 10, 0.0733880), (1.0, 8, 0.3465935), (2.776445, 4, 0.05), (0.0, 3, 1.0)],
)
def test_t_distribution_matches_tables(t: float, df: float, p: float) -> None:
    assert t_two_sided_p(t, df) == pytest.approx(p, abs=1e-5)
    assert t_two_sided_p(-t, df) == pytest.approx(p, abs=1e-5)


def test_t_quantile_and_betainc() -> None:
    assert t_quantile(0.975, 4) == pytest.approx(2.776445, abs=1e-5)
    assert t_quantile(0.975, 1000) == pytest.approx(1.962339, abs=1e-4)
    assert betainc(2, 3, 0.4) == pytest.approx(0.5248, abs=1e-4)
    assert betainc(1, 1, 0.3) == pytest.approx(0.3)


def test_welch_known_example() -> None:
    # equal variances and sizes: Welch's t equals Student's, t = -1, df = 8
    assert welch_p([1, 2, 3, 4, 5], [2, 3, 4, 5, 6]) == pytest.approx(0.3465935, abs=1e-6)


def test_delta_is_b_against_a() -> None:
    """The one convention, in compare mode and the bench alike: (B - A) / A, positive when B is
    higher."""
    assert delta_pct(11.79, 21.78) == pytest.approx(84.7, abs=0.05)
    assert delta_pct(33, 26) == pytest.approx(-21.2, abs=0.05)
    assert delta_pct(26, 33) == pytest.approx(26.9, abs=0.05)
    assert delta_pct(0.0, 1.0) is None and delta_pct(None, 1.0) is None
    assert delta_pct(1.0, 0.0) == -100.0 and delta_pct(1.0, None) is None


def test_clear_difference_is_significant() -> None:
    c = compare([11.6, 11.9, 11.8, 11.7, 11.9], [21.5, 21.8, 22.0, 21.7, 21.9])
    assert c.significant and c.p_value is not None and c.p_value < 1e-6
    assert c.delta_pct == pytest.approx(84.7, abs=0.5)
    assert compare([21.5, 21.8, 22.0], [11.6, 11.9, 11.8]).delta_pct == pytest.approx(
        -45.8, abs=0.5
    )


def test_difference_inside_the_spread_is_not_significant() -> None:
    c = compare([20.0, 22.0, 19.5, 22.5], [20.5, 21.5, 19.0, 22.8])
    assert not c.significant and c.p_value is not None and c.p_value > 0.5


def test_degenerate_cases() -> None:
    assert not compare([5.0, 5.0], [5.0, 5.0]).significant  # no spread, equal
    assert compare([5.0, 5.0], [4.0, 4.0]).significant  # no spread, every value differs
    one = compare([30.0], [10.0, 10.1])
    assert not one.significant and one.p_value is None  # too few samples on a side
    assert compare([], [1.0]).delta_pct is None


def test_delta_text_marks_not_significant() -> None:
    measured = Row("Overall Speed", "k", "t/s", (2.0, 1.0), ("a", "b"), 84.66, 0.001, True)
    assert measured.delta_text() == "+84.7%"
    ns = Row("Overall Speed", "k", "t/s", (2.0, 1.0), ("a", "b"), 1.23, 0.4, False)
    assert ns.delta_text() == "+1.2% (n.s.)"
    fact = Row("Model Size", "k", "bytes", (26.0, 33.0), ("a", "b"), -21.2, None, None)
    assert fact.delta_text() == "-21%"
    assert Row("x", "k", "u", (None, None), ("-", "-")).delta_text() == "-"


def test_user_prompt_sets_from_the_config(tmp_path: Path) -> None:
    """[bench.prompts]: a list per category; new names make categories, old ones get more."""
    from coder_tui.core.bench.prompts import CATEGORIES, parse_categories, select_prompts
    from coder_tui.core.config.loader import parse_config

    text = (
        '[profiles.a]\nmodel = "m.gguf"\n\n[bench.prompts]\n'
        'coding = ["Write a Rust function that reverses a string."]\n'
        'sql = ["Write a SQL query for the top 5 customers.", "Explain a LEFT JOIN."]\n'
    )
    config = parse_config(text, tmp_path / "config.toml", check_files=False)
    user = config.bench.prompts
    assert parse_categories(None, user) == (*CATEGORIES, "sql")
    sql = select_prompts(["sql"], None, user)
    assert [p.id for p in sql] == ["sql/user-1", "sql/user-2"]
    coding = select_prompts(["coding"], None, user)
    assert coding[-1].id == "coding/user-1" and len(coding) >= 7


def test_bad_user_prompt_set_is_a_config_error(tmp_path: Path) -> None:
    from coder_tui.core.config.loader import parse_config
    from coder_tui.core.errors import ConfigError

    text = '[profiles.a]\nmodel = "m.gguf"\n\n[bench.prompts]\nsql = "not a list"\n'
    with pytest.raises(ConfigError) as info:
        parse_config(text, tmp_path / "config.toml", check_files=False)
    assert str(info.value) == (
        'config.toml:5: bench.prompts.sql: expected a list of prompt texts, got "not a list"'
    )


def test_compare_mode_and_the_bench_read_deltas_the_same_way() -> None:
    """One convention: compare mode's delta column and the bench's Delta column both read B (the
    second profile) against A, so the same numbers give the same signed delta in both."""
    from coder_tui.core.bench.compare import CompareResult, CompareRun, to_markdown

    def run(profile: str, tps: float) -> CompareRun:
        return CompareRun(profile, "x", "done", 0.1, 500.0, tps, 64, None)

    a, b = [11.6, 11.9, 11.8], [21.5, 21.8, 22.0]
    result = CompareResult(
        "p", "iq2", "q8", tuple(run("iq2", v) for v in a), tuple(run("q8", v) for v in b)
    )
    _, _, compare_delta = result.stats("generation_tokens_per_s")
    bench_delta = compare(a, b).delta_pct
    assert compare_delta == pytest.approx(bench_delta) and compare_delta > 0
    md = to_markdown(result)
    assert f"| {compare_delta:+.1f} % |" in md
    assert "Delta = (q8 - iq2) / iq2: positive means q8 is higher." in md
