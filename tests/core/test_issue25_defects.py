"""Issue 25's terminal and number defects, each checked on what the user reads (the CLI's output,
the reports' text and numbers), so that each test fails on the code before the fix (b93293b) for
the reason the issue gives. ``test_bench_numbers.py``, ``test_cli.py``, ``test_first_run.py``,
``test_fit.py`` and ``test_demo.py`` hold the rest."""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from test_bench_support import sample, two_profile_result

from coder_tui.__main__ import _parser, main
from coder_tui.core.bench.compare import CompareResult, CompareRun, to_markdown
from coder_tui.core.bench.report import markdown
from coder_tui.core.bench.table import columns_of
from coder_tui.core.demo.build import prepare_demo
from coder_tui.core.paths import app_paths

FAST = [21.5, 21.8, 22.0, 21.7, 21.9, 21.6]
SLOW = [11.6, 11.9, 11.8, 11.7, 11.9, 11.5]


def test_plain_coder_tui_without_a_config_says_how_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Plain ``coder-tui`` without a config (here not in a terminal, so no first-run screen)
    said only ``cannot read ~/.config/coder-tui/config.toml``: neither ``demo`` nor
    ``config.example.toml``."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("HF_HOME", "HF_HUB_CACHE", "LLAMA_CACHE"):
        monkeypatch.delenv(name, raising=False)
    assert not app_paths().default_config_file.exists()
    assert main([]) != 0
    err = capsys.readouterr().err
    assert "coder-tui demo" in err and "config.example.toml" in err, err
    assert str(app_paths().default_config_file) in err and "Traceback" not in err


def _run(profile: str, speed: float, tokens: int = 128) -> CompareRun:
    return CompareRun(profile, "x", "done", 0.1, 500.0, speed, tokens, None)


def test_compare_report_marks_a_delta_that_is_not_significant() -> None:
    """Compare's deltas had no significance mark (the bench's ``(n.s.)``)."""
    one = CompareResult("p", "a", "b", (_run("a", 20.0),), (_run("b", 10.0),))
    md = to_markdown(one)
    assert re.search(r"-50\.0 ?% \(n\.s\.\)", md), md  # one run a side: never significant
    many = CompareResult(
        "p", "a", "b", tuple(_run("a", v) for v in FAST), tuple(_run("b", v) for v in SLOW)
    )
    md = to_markdown(many)
    delta = re.search(r"-4\d\.\d ?%( \(n\.s\.\))?", md)
    assert delta is not None and delta.group(1) is None, md  # six runs a side: significant


def _delta(md: str, metric: str) -> float:
    row = next(line for line in md.splitlines() if line.startswith(f"| {metric} |"))
    cell = row.strip("|").split("|")[-1]
    return float(re.sub(r"[^0-9.+-]", "", cell.split("(")[0]))


def test_bench_and_compare_give_the_same_delta_for_the_same_numbers() -> None:
    """Compare's delta was (B - A) / A and the bench's (first - second) / second."""
    bench = markdown(two_profile_result(FAST, SLOW))  # first FAST, second SLOW
    compare = to_markdown(
        CompareResult(
            "p", "a", "b", tuple(_run("a", v) for v in FAST), tuple(_run("b", v) for v in SLOW)
        )
    )
    want = (sum(SLOW) - sum(FAST)) / sum(FAST) * 100  # -46.1: B against A
    assert _delta(bench, "Overall Speed") == pytest.approx(want, abs=0.1), bench
    assert _delta(compare, "generation tok/s") == pytest.approx(want, abs=0.1), compare


def test_compare_replies_are_a_fixed_length_by_default() -> None:
    """Compare was not fixed-length: 8 vs 53 tokens gave ``+562.5 %`` tokens next to the speed
    delta. Its report now says the length both replies were held to."""
    md = to_markdown(CompareResult("p", "a", "b", (_run("a", 20.0),), (_run("b", 10.0),)))
    assert re.search(r"exactly \d+ tokens \(ignore_eos\)", md), md


def _early(profile: str, speed: float) -> object:
    return replace(sample(profile, "coding", speed), predicted_n=3, finish_reason="stop")


def test_samples_cut_short_by_end_of_text_are_left_out_of_the_numbers() -> None:
    """A run without fixed length kept samples at 3-7 t/s from early end-of-text (stdev 1398 on
    a mean of 1941)."""
    base = two_profile_result(FAST, SLOW)
    loose = replace(
        base,
        settings=replace(base.settings, fixed_length=False, max_tokens=256),
        samples=(*base.samples, _early("iq2_xxs", 3.0), _early("iq2_xxs", 7.0)),
    )
    speeds = columns_of(loose)[0].values("gen_tokens_per_s")
    assert sorted(speeds) == sorted(FAST), speeds


def test_quantizing_says_which_step_and_how_long_the_rest_takes(tmp_path: Path) -> None:
    """``demo --size bench`` spent ~50 s quantizing with no progress shown: each step now says
    which of how many, and from the second on about how long the rest takes."""
    fake = tmp_path / "quantize"  # the tool's time, not its work: a step of 0.6 s
    fake.write_text(
        f"#!{sys.executable}\nimport sys, time\ntime.sleep(0.6)\n"
        "open(sys.argv[2], 'wb').write(b'GGUF')\n"
    )
    fake.chmod(0o755)
    said: list[str] = []
    prepare_demo(
        tmp_path / "out", "small", ["Q8_0", "Q4_K_M"], quantize_bin=fake, progress=said.append
    )
    quantizing = [m for m in said if m.startswith("quantizing")]
    assert "quantizing demo-small-Q8_0.gguf (1/2)" in quantizing, quantizing
    assert any(
        re.fullmatch(r"quantizing demo-small-Q4_K_M\.gguf \(2/2, about \d+ s left\)", m)
        for m in quantizing
    ), quantizing


def _parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.extend(_parsers(sub, (*path, name)))
    return found


def test_no_help_text_speaks_of_the_seed() -> None:
    """``bench``'s help said "the seed's comparison table": jargon a user cannot know."""
    for path, parser in _parsers(_parser()):
        assert "seed's" not in parser.format_help(), path
    assert "seed's" not in _parser().format_help()
