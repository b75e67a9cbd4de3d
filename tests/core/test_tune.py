"""The autotuner's logic (order, early stop on out-of-memory, budget, winner) and its server side
against the scripted fake llama-server (``FAKE_MODE=oom_load`` fails every start with a CUDA OOM).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

import coder_tui.__main__ as cli_main
from coder_tui.core.config.flags import profile_to_table
from coder_tui.core.config.loader import Config, Profile, ServerSettings
from coder_tui.core.server.ports import free_port
from coder_tui.core.tune.sweep import around, pick_winner, sweep_order, tune
from coder_tui.core.tune.trial import candidate_profile, measure_trial
from coder_tui.core.tune.types import (
    Candidate,
    Trial,
    TrialFinished,
    TrialStarted,
    TrialStatus,
    TuneEvent,
    TuneFinished,
    TuneSettings,
)

SETTINGS = TuneSettings(default_ngl=99)


def ok(c: Candidate, gen: float, **kw: object) -> Trial:
    return Trial(c, TrialStatus.OK, generation_tokens_per_s=gen, **kw)  # type: ignore[arg-type]


def config_for(binary: Path | None, model: Path, env: dict[str, str] | None = None) -> Config:
    profile = Profile(name="p", model=model, ctx=4096, n_gpu_layers=99, env=env or {})
    server = ServerSettings(binary=binary, port=free_port(), ready_timeout_s=10, stop_grace_s=3)
    return Config(path=None, server=server, profiles={"p": profile}, default_profile="p")


async def collect(events: object) -> list[TuneEvent]:
    return [e async for e in events]  # type: ignore[attr-defined]


def test_sweep_runs_from_least_vram_to_most() -> None:
    cands = [Candidate(99, n) for n in (0, 4, 2)] + [
        Candidate(98, 2),
        Candidate(99, 2, ubatch=1024),
    ]
    order = sweep_order([*cands, Candidate(99, 0)], SETTINGS)  # duplicates run once
    assert [c.label() for c in order] == [
        "-ngl 98 --n-cpu-moe 2",
        "-ngl 99 --n-cpu-moe 4",
        "-ngl 99 --n-cpu-moe 2",
        "-ngl 99 --n-cpu-moe 2 -ub 1024",
        "-ngl 99 --n-cpu-moe 0",
    ]


def test_needs_at_least() -> None:
    base = Candidate(99, 2)
    assert Candidate(99, 1).needs_at_least(base, 99, 512)
    assert Candidate(99, 2, ubatch=1024).needs_at_least(base, 99, 512)
    assert not Candidate(99, 3).needs_at_least(base, 99, 512)
    assert not Candidate(40, 0).needs_at_least(base, 99, 512)
    assert Candidate(None, 1).needs_at_least(base, 99, 512)  # None: the profile's -ngl (99)


def test_winner_is_the_fastest_that_ran_and_fits() -> None:
    a, b, c, d = (Candidate(99, n) for n in (3, 2, 1, 0))
    trials = [
        ok(a, 10.0, fits_with_margin=True),
        ok(b, 12.0, fits_with_margin=None),  # no GPU: unknown counts as fitting
        ok(c, 15.0, fits_with_margin=False),  # fastest, but over the VRAM with margin
        Trial(d, TrialStatus.OOM),
    ]
    assert pick_winner(trials) is trials[1]
    assert pick_winner([Trial(d, TrialStatus.FAILED)]) is None


async def test_out_of_memory_stops_the_sweep_early(tmp_path: Path) -> None:
    ran: list[str] = []

    async def measure(
        _config: Config, _profile: Profile, cand: Candidate, _s: TuneSettings
    ) -> Trial:
        ran.append(cand.label())
        if cand.n_cpu_moe <= 1:
            return Trial(cand, TrialStatus.OOM, message="ran out of GPU memory (CUDA)")
        return ok(cand, 100.0 - cand.n_cpu_moe)

    cands = [Candidate(99, n) for n in range(5)]
    events = await collect(
        tune(config_for(None, tmp_path / "m"), PROFILE, cands, SETTINGS, measure=measure)
    )
    assert ran == [f"-ngl 99 --n-cpu-moe {n}" for n in (4, 3, 2, 1)]
    done = events[-1]
    assert isinstance(done, TuneFinished)
    assert [t.status for t in done.trials] == [TrialStatus.OK] * 3 + [
        TrialStatus.OOM,
        TrialStatus.SKIPPED,
    ]
    assert "needs more VRAM than -ngl 99 --n-cpu-moe 1" in done.trials[-1].message
    assert done.winner is done.trials[2]  # --n-cpu-moe 2: the fastest that fit
    started = [e for e in events if isinstance(e, TrialStarted)]
    finished = [e for e in events if isinstance(e, TrialFinished)]
    assert len(started) == 4 and len(finished) == 5 and finished[-1].total == 5


async def test_the_budget_skips_trials_that_would_run_over(tmp_path: Path) -> None:
    now = [0.0]

    async def measure(_c: Config, _p: Profile, cand: Candidate, _s: TuneSettings) -> Trial:
        now[0] += 40.0  # every trial takes 40 s
        return ok(cand, float(10 - cand.n_cpu_moe))

    settings = dataclasses.replace(SETTINGS, budget_s=100.0)
    cands = [Candidate(99, n) for n in range(4)]
    events = await collect(
        tune(
            config_for(None, tmp_path / "m"),
            PROFILE,
            cands,
            settings,
            measure=measure,
            clock=lambda: now[0],
        )
    )
    done = events[-1]
    assert isinstance(done, TuneFinished)
    assert [t.status for t in done.trials] == [TrialStatus.OK] * 2 + [TrialStatus.SKIPPED] * 2
    assert done.trials[-1].message == "over the time budget"
    assert done.trials[0].elapsed_s == 40.0


def test_candidate_profile_replaces_placement_flags() -> None:
    p = dataclasses.replace(
        PROFILE,
        extra_args=("-ngl", "7", "--n-cpu-moe=3", "-cmoe", "--mlock", "-ub", "256"),
        batch=512,
    )
    c = candidate_profile(p, Candidate(20, 4, ubatch=1024, threads=8))
    assert (c.n_gpu_layers, c.n_cpu_moe, c.ubatch, c.batch, c.threads) == (20, 4, 1024, 1024, 8)
    assert c.extra_args == ("--mlock",)
    keep = candidate_profile(p, Candidate(None, 0))
    assert keep.n_gpu_layers == 99 and keep.n_cpu_moe is None and "-ub" in keep.extra_args
    # Tensor overrides are the user's: a key or in extra_args, they stay with every candidate.
    ot = dataclasses.replace(
        p, override_tensor=("exps=CPU",), extra_args=("-ot", "a=CPU", "-t", "4")
    )
    c = candidate_profile(ot, Candidate(20, 4, threads=8))
    assert c.override_tensor == ("exps=CPU",) and c.extra_args == ("-ot", "a=CPU")


def test_around_and_profile_table() -> None:
    assert around(10, 0, 48) == [8, 9, 10, 11, 12]
    assert around(0, 0, 48) == [0, 1, 2]
    assert around(8, 7, 48) == [0, 8, 9, 10]  # values <= the first GPU layer act as 0
    table = profile_to_table(
        dataclasses.replace(
            PROFILE, env={"A": "1"}, extra_args=("--x",), override_tensor=("a=CPU",), inherit="q"
        )
    )
    assert table == {
        "model": "/m.gguf",
        "ctx": 4096,
        "n_gpu_layers": 99,
        "override_tensor": ["a=CPU"],
        "env": {"A": "1"},
        "extra_args": ["--x"],
    }


PROFILE = Profile(name="p", model=Path("/m.gguf"), ctx=4096, n_gpu_layers=99)


# -- against the fake server ------------------------------------------------------------------
@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF")
    return path


async def test_start_oom_is_marked_and_the_rest_skipped(
    fake_server_binary: Path, model_file: Path
) -> None:
    config = config_for(fake_server_binary, model_file, {"FAKE_MODE": "oom_load"})
    profile = config.profile("p")
    cands = [Candidate(99, n) for n in (0, 1, 2)]
    events = await collect(tune(config, profile, cands, SETTINGS))
    done = events[-1]
    assert isinstance(done, TuneFinished) and done.winner is None
    first, *rest = done.trials
    assert first.candidate.n_cpu_moe == 2 and first.status is TrialStatus.OOM
    assert "out of GPU memory" in first.message
    assert [t.status for t in rest] == [TrialStatus.SKIPPED, TrialStatus.SKIPPED]


async def test_a_server_that_cannot_chat_is_a_failed_trial(
    fake_server_binary: Path, model_file: Path
) -> None:
    # The fake answers chat requests only with the key it was given: tune's request has none.
    env = {"FAKE_MODE": "normal", "LLAMA_API_KEY": "sk-test-only"}
    config = config_for(fake_server_binary, model_file, env)
    trial = await measure_trial(config, config.profile("p"), Candidate(99, 1), SETTINGS)
    assert trial.status is TrialStatus.FAILED and trial.load_time_s is not None
    assert trial.peak_vram_bytes is None  # no GPU here


async def test_out_of_memory_mid_run_is_found_behind_a_long_backtrace(
    fake_server_binary: Path, model_file: Path
) -> None:
    # On the H100 a CUDA OOM during the long prompt was followed by a backtrace longer than the
    # log tail tune used to read, so the trial counted as a plain failure and the sweep went on.
    config = config_for(fake_server_binary, model_file, {"FAKE_MODE": "oom_generate"})
    trial = await measure_trial(config, config.profile("p"), Candidate(99, 1), SETTINGS)
    assert trial.status is TrialStatus.OOM


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(cli_main, "EXTRA_COMMANDS", ("fit", "tune"))
    yield


def test_cli_tune_reports_oom_and_exits_1(
    cli: None,
    fake_server_binary: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from coder_tui.core.demo.model import SIZES, write_f16_model

    model = tmp_path / "small.gguf"
    write_f16_model(model, SIZES["small"])
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f"[server]\nbinary = '{fake_server_binary}'\nport = {free_port()}\nready_timeout_s = 10\n"
        f"[profiles.p]\nmodel = '{model}'\nn_gpu_layers = 99\nctx = 4096\n"
        "[profiles.p.env]\nFAKE_MODE = 'oom_load'\n"
    )
    code = cli_main.main(["tune", "p", "--config", str(cfg), "--candidates", "0,1,2"])
    out = capsys.readouterr().out
    assert code == 1
    assert "[1/3] -ngl 99 --n-cpu-moe 2 ..." in out
    assert "[1/3] out of memory: llama-server (p) exited with code 1: ran out of GPU memory" in out
    assert out.count("skipped") == 4  # two progress lines and two table rows
    assert "no candidate ran and fit" in out
