"""``coder-tui bench`` against the real llama-server on the small demo model (issue 6 acceptance).

Two quant profiles, two interleaved rounds, one short prompt per category, fixed-length replies.
Acceptance 1: the seed-layout table with all its rows; JSON that validates against the schema.
Acceptance 2: a second run ranks the profiles the same way wherever both runs call the difference
significant. On a busy 2-core CI box nothing may be significant (the test then checks the marking
is consistent, not that a difference exists): the tiny model's speeds are dominated by scheduling.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

import coder_tui.__main__ as cli_main
from coder_tui.core.demo.build import DemoResult
from coder_tui.core.server.ports import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent.parent
SCHEMA = json.loads((ROOT / "docs" / "bench-schema.json").read_text())
SEED_ROWS = (
    "Overall Speed", "Coding Tasks", "Technical Writing", "Debugging", "Reasoning",
    "Prompt Speed", "Time to First Token", "Model Size", "GPU Layers", "CPU-MoE Layers",
    "Load Time",
)  # fmt: skip


def _config(demo: DemoResult, tmp_path: Path) -> str:
    text = demo.config_path.read_text()
    text = re.sub(r"(?m)^port = \d+$", f"port = {free_port()}", text)
    path = tmp_path / "config.toml"
    path.write_text(text)
    return str(path)


def _bench(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli_main.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


FLIP_PCT = 10.0
"""Within a run, Welch's test can call a few-percent gap significant that the next run, with the
machine in another state (a 2-core VM, 16-token replies of a tiny model), turns around. A gap this
large and significant in both runs must keep its sign."""


def _significant_signs(data: dict[str, object]) -> dict[str, float]:
    comparison = data["comparison"]
    assert isinstance(comparison, dict)
    return {
        row["key"]: row["delta_pct"]
        for row in comparison["rows"]
        if row["significant"] and row["delta_pct"] and abs(row["delta_pct"]) >= FLIP_PCT
    }


def test_bench_two_quants(
    demo: DemoResult,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(cli_main, "EXTRA_COMMANDS", ("bench",))
    argv = ["bench", "--config", _config(demo, tmp_path), "--profiles", "q8_0,iq2_xxs"]
    argv += ["--runs", "2", "--prompts-per-category", "1", "--fixed-length", "--max-tokens", "16"]

    code, out, err = _bench(argv, capsys)
    assert code == 0, err
    assert "| Metric | q8_0 | iq2_xxs | Delta |" in out
    for metric in SEED_ROWS:
        assert re.search(rf"(?m)^\| {re.escape(metric)} \| .+ \| .+ \| .+ \|$", out), metric
    assert "ETA" in err
    size_row = next(line for line in out.splitlines() if line.startswith("| Model Size |"))
    assert "MiB" in size_row  # IEC, as everywhere sizes are shown
    first_id = int(re.search(r"saved as run #(\d+)", err).group(1))  # type: ignore[union-attr]

    out_file = tmp_path / "second.json"
    code, _, err = _bench([*argv, "--format", "json", "--out", str(out_file)], capsys)
    assert code == 0, err
    second = json.loads(out_file.read_text())
    jsonschema.validate(second, SCHEMA)
    assert not second["interrupted"]
    for profile in second["profiles"]:
        assert profile["good_samples"] == 2 * 4 and profile["failed_samples"] == 0
        assert profile["model_size_bytes"] > 0 and profile["n_layers"] == 2
        assert len(profile["load_times_s"]) == 2
    assert all(s["predicted_n"] == 16 for s in second["samples"])  # fixed length held

    code, shown, _ = _bench(["bench", "show", str(first_id), "--format", "json"], capsys)
    assert code == 0
    first = json.loads(shown)
    jsonschema.validate(first, SCHEMA)

    a, b = _significant_signs(first), _significant_signs(second)
    for key in a.keys() & b.keys():
        assert (a[key] > 0) == (b[key] > 0), (
            f"{key}: ranking flipped between runs while significant in both: "
            f"{a[key]:+.1f} % then {b[key]:+.1f} %"
        )

    code, compared, _ = _bench(
        ["bench", "show", str(first_id), "--vs", str(second["run_id"])], capsys
    )
    assert (
        code == 0
        and f"| Metric | q8_0 #{first_id} | q8_0 #{second['run_id']} | Delta |" in compared
    )
