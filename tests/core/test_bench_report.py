"""Bench output: the seed-layout table, JSON against docs/bench-schema.json, CSV, the store, the CLI."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import os
import signal
from pathlib import Path

import jsonschema
import pytest
from test_bench_support import MACHINE, FakeBackend, two_profile_result

import coder_tui.__main__ as cli_main
from coder_tui.cli import bench as bench_cli
from coder_tui.core.bench.report import compare_runs_markdown, markdown
from coder_tui.core.bench.serialize import to_csv, to_json, to_json_dict
from coder_tui.core.bench.store import BENCH_SCHEMA_VERSION, BenchStore
from coder_tui.core.config.loader import Profile
from coder_tui.core.errors import UserError
from coder_tui.core.store.history import HistoryStore

ROOT = Path(__file__).resolve().parent.parent.parent
SCHEMA = json.loads((ROOT / "docs" / "bench-schema.json").read_text())
SEED_ROWS = (
    "Overall Speed", "Coding Tasks", "Technical Writing", "Model Size", "GPU Layers",
    "CPU-MoE Layers", "Load Time",
)  # fmt: skip

FAST = [21.5, 21.8, 22.0, 21.7, 21.9, 21.6]
SLOW = [11.6, 11.9, 11.8, 11.7, 11.9, 11.5]


def _row(md: str, metric: str) -> list[str]:
    line = next(x for x in md.splitlines() if x.startswith(f"| {metric} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_markdown_has_the_seed_layout() -> None:
    md = markdown(two_profile_result(FAST, SLOW))
    assert "| Metric | iq2_xxs | iq3_xxs | Delta |" in md
    for metric in SEED_ROWS:
        _row(md, metric)
    overall = _row(md, "Overall Speed")
    # Deltas read B (the second column) against A: iq3_xxs is slower, bigger, more in RAM.
    assert overall[1].endswith(" t/s") and overall[3].startswith("-") and "n.s." not in overall[3]
    assert _row(md, "Model Size") == ["Model Size", "24.2 GiB", "30.7 GiB", "+27%"]
    assert _row(md, "GPU Layers") == ["GPU Layers", "42 / 48", "34 / 48", "-19%"]
    assert _row(md, "CPU-MoE Layers") == ["CPU-MoE Layers", "10", "18", "+80%"]
    assert _row(md, "Load Time")[1:3] == ["~7.1s", "~12s"]
    assert _row(md, "Quality")[1:3] == ["1/1 passed", "0/1 passed"]
    assert "Welch" in md and "GPU: no NVIDIA GPU" in md and "llama-server: b9999" in md
    assert "- RAM: 16.0 GiB" in md and "positive means the second column is higher" in md
    assert "| iq2_xxs | coding |" in md  # per-category statistics


def test_difference_inside_the_spread_is_marked() -> None:
    noisy_a = [20.0, 22.0, 19.5, 22.5, 21.0, 20.0]
    noisy_b = [20.5, 21.5, 19.0, 22.8, 20.0, 21.0]
    md = markdown(two_profile_result(noisy_a, noisy_b))
    assert _row(md, "Overall Speed")[3].endswith("(n.s.)")
    assert "n.s." not in _row(md, "Model Size")[3]  # facts are not tested


def test_json_validates_against_the_documented_schema() -> None:
    result = two_profile_result(FAST, SLOW)
    data = json.loads(to_json(result))
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    assert data["schema"] == "coder-tui-bench/2"
    rows = {r["key"]: r for r in data["comparison"]["rows"]}
    assert rows["overall_gen_tokens_per_s"]["significant"] is True
    assert rows["overall_gen_tokens_per_s"]["delta_pct"] < 0  # b (SLOW) against a (FAST)
    assert rows["model_size_bytes"]["delta_pct"] == pytest.approx((33 - 26) / 26 * 100)
    assert rows["model_size_bytes"]["significant"] is None
    assert data["profiles"][0]["categories"]["coding"]["gen_tokens_per_s"]["n"] == 3
    assert data["profiles"][0]["quality"]["pass_rate"] == 1.0
    # one profile: no comparison; an interrupted run with no samples still validates
    from dataclasses import replace

    single = replace(result, profiles=result.profiles[:1], samples=(), quality=(), interrupted=True)
    jsonschema.validate(to_json_dict(single), SCHEMA)
    assert to_json_dict(single)["comparison"] is None


def test_csv_has_a_row_per_profile_category_metric() -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv(two_profile_result(FAST, SLOW)))))
    assert len(rows) == 2 * 3 * 3
    first = rows[0]
    assert (first["profile"], first["category"], first["metric"]) == (
        "iq2_xxs", "all", "gen_tokens_per_s"
    )  # fmt: skip
    assert float(first["mean"]) == pytest.approx(sum(FAST) / 6)


def test_store_round_trip_shares_the_history_file(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    HistoryStore(db).close()  # the chat history's own tables and user_version
    result = two_profile_result(FAST, SLOW)
    with BenchStore(db) as store:
        assert store.version() == BENCH_SCHEMA_VERSION
        run_id = store.save(result)
        again = store.load(run_id)
        assert store.runs()[0].run_id == run_id and store.runs()[0].samples == 12
        with pytest.raises(UserError, match="no bench run #99"):
            store.load(99)
    assert again.samples == result.samples and again.profiles == result.profiles
    assert again.settings == result.settings and again.machine == result.machine
    assert again.quality[1].output_tail == "AssertionError" and again.run_id == run_id
    with HistoryStore(db) as history:  # the chat history still opens
        assert history.path == db
    assert oct(os.stat(db).st_mode & 0o777) == "0o600"


def test_compare_runs(tmp_path: Path) -> None:
    from dataclasses import replace

    a = replace(two_profile_result(FAST, SLOW), run_id=3)
    b = replace(two_profile_result(SLOW, FAST), run_id=1)
    md = compare_runs_markdown(a, b)
    assert "| Metric | iq2_xxs #3 | iq2_xxs #1 | Delta |" in md
    assert "| Metric | iq3_xxs #3 | iq3_xxs #1 | Delta |" in md


# -- the CLI ---------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coder-tui")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS)
    bench_cli.register(parser.add_subparsers(dest="command"), common)
    return parser


def _config(tmp_path: Path) -> Path:
    for name in ("a", "b"):
        (tmp_path / f"{name}.gguf").write_bytes(b"x")
    path = tmp_path / "config.toml"
    path.write_text(
        'default_profile = "a"\n[profiles.a]\nmodel = "a.gguf"\n[profiles.b]\nmodel = "b.gguf"\n'
    )
    return path


@pytest.fixture
def fake_backend(monkeypatch: pytest.MonkeyPatch) -> list[FakeBackend]:
    made: list[FakeBackend] = []

    def factory(*args: object, **kwargs: object) -> FakeBackend:
        made.append(FakeBackend({"a": 30.0, "b": 15.0}))
        return made[-1]

    monkeypatch.setattr("coder_tui.core.bench.runner.ServerBackend", factory)
    monkeypatch.setattr("coder_tui.core.bench.runner.probe_machine", lambda v: MACHINE)
    return made


def test_cli_parses() -> None:
    args = _parser().parse_args(["bench", "--profiles", "a,b", "--runs", "3", "--fixed-length"])
    assert args.func is bench_cli.run and args.bench_command is None and args.runs == 3
    args = _parser().parse_args(["bench", "show", "4", "--vs", "2"])
    assert (args.bench_command, args.run_id, args.vs) == ("show", 4, 2)
    with pytest.raises(SystemExit):
        _parser().parse_args(["bench", "--runs", "0"])


def test_cli_bench_history_show(
    tmp_path: Path,
    fake_backend: list[FakeBackend],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(cli_main, "EXTRA_COMMANDS", ("bench",))
    cfg = str(_config(tmp_path))
    argv = ["bench", "--config", cfg, "--profiles", "a,b", "--runs", "2"]
    argv += ["--categories", "coding,writing", "--prompts-per-category", "1", "--max-tokens", "8"]
    assert cli_main.main(argv) == 0
    out, err = capsys.readouterr()
    assert "| Metric | a | b | Delta |" in out and "| Coding Tasks |" in out
    assert "ETA" in err and "saved as run #" in err
    assert [c[1] for c in fake_backend[0].calls if c[0] == "load"] == ["a", "b", "a", "b"]
    assert cli_main.main([*argv, "--format", "json", "--no-save"]) == 0
    jsonschema.validate(json.loads(capsys.readouterr().out), SCHEMA)
    assert cli_main.main(["bench", "history"]) == 0
    listing = capsys.readouterr().out
    run_id = int(listing.splitlines()[1].split()[0])
    assert "a,b" in listing
    assert cli_main.main(["bench", "show", str(run_id), "--vs", str(run_id)]) == 0
    assert f"| Metric | a #{run_id} | a #{run_id} | Delta |" in capsys.readouterr().out
    assert cli_main.main(["bench", "show", "9999"]) == 2
    assert "no bench run #9999" in capsys.readouterr().err
    assert cli_main.main(["bench", "--config", cfg, "--categories", "cooking"]) == 2


def test_cli_ctrl_c_keeps_finished_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    made: list[FakeBackend] = []

    def factory(*args: object, **kwargs: object) -> FakeBackend:
        def interrupt(n: int) -> None:
            if n == 5:  # the 5th request (warm-up + 4): Ctrl+C while it is in flight
                os.kill(os.getpid(), signal.SIGINT)

        made.append(FakeBackend({"a": 30.0, "b": 15.0}, delay_s=0.05, on_complete=interrupt))
        return made[-1]

    monkeypatch.setattr("coder_tui.core.bench.runner.ServerBackend", factory)
    monkeypatch.setattr("coder_tui.core.bench.runner.probe_machine", lambda v: MACHINE)
    args = _parser().parse_args(
        ["bench", "--config", str(_config(tmp_path)), "--profiles", "a,b", "--runs", "2",
         "--categories", "coding", "--prompts-per-category", "6", "--format", "json"]
    )  # fmt: skip
    assert args.func(args) == 130
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert data["interrupted"] is True and len(data["samples"]) == 3
    assert "interrupted" in err and made[0].loaded is None and made[0].unloads >= 1


class _SwallowingBackend(FakeBackend):
    """Absorbs a cancel while "stopping" during a swap, as ServerManager's stop does."""

    async def load(self, profile: Profile) -> float:
        if self.loaded is not None or any(c[0] == "load" for c in self.calls):
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl+C during the swap
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.2)
        return await super().load(profile)


def test_cli_ctrl_c_during_a_swap_still_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    made: list[FakeBackend] = []

    def factory(*args: object, **kwargs: object) -> FakeBackend:
        made.append(_SwallowingBackend({"a": 30.0, "b": 15.0}))
        return made[-1]

    monkeypatch.setattr("coder_tui.core.bench.runner.ServerBackend", factory)
    monkeypatch.setattr("coder_tui.core.bench.runner.probe_machine", lambda v: MACHINE)
    args = _parser().parse_args(
        ["bench", "--config", str(_config(tmp_path)), "--profiles", "a,b", "--runs", "3",
         "--categories", "coding", "--prompts-per-category", "2", "--format", "json", "--no-save"]
    )  # fmt: skip
    assert args.func(args) == 130
    data = json.loads(capsys.readouterr().out)
    assert data["interrupted"] is True and len(data["samples"]) <= 3
    assert [c[1] for c in made[0].calls if c[0] == "load"] == ["a", "b"]
    assert made[0].loaded is None
