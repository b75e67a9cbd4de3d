"""``tune`` for real: the small demo model on llama-server, two candidates, timings from the server.

On a CPU-only machine ``--n-cpu-moe`` hardly moves anything, but every part of the sweep runs:
start, a fixed-length generation (``ignore_eos``), a long prompt, stop, the table and the winner.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import coder_tui.__main__ as cli_main
from coder_tui.core.config.loader import Config
from coder_tui.core.demo.build import DemoResult
from coder_tui.core.tune.sweep import (
    Candidate,
    TrialStatus,
    TuneFinished,
    TuneSettings,
    tune,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_two_candidates_measured_and_a_winner(demo_config: Config) -> None:
    profile = demo_config.profile("q4_k_m")
    settings = TuneSettings(gen_tokens=24, prompt_tokens=300, default_ngl=99, repeats=1)
    cands = [Candidate(99, 0), Candidate(99, 2)]
    events = [e async for e in tune(demo_config, profile, cands, settings)]
    done = events[-1]
    assert isinstance(done, TuneFinished)
    assert [t.candidate.n_cpu_moe for t in done.trials] == [2, 0]  # least VRAM first
    for t in done.trials:
        assert t.status is TrialStatus.OK, t.message
        assert t.generation_tokens_per_s and t.generation_tokens_per_s > 0
        assert t.prompt_tokens_per_s and t.prompt_tokens_per_s > 0
        prompt_n = int(t.message.split()[1])
        assert 200 <= prompt_n <= 420  # sized with /tokenize (plus the chat template)
        assert t.peak_vram_bytes is None  # no GPU in CI
    assert done.winner is not None
    best = max(t.generation_tokens_per_s or 0 for t in done.trials)
    assert done.winner.generation_tokens_per_s == best


def test_cli_tune_saves_the_winner(
    demo: DemoResult, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from coder_tui.core.paths import app_paths
    from coder_tui.core.server.ports import free_port

    monkeypatch.setattr(cli_main, "EXTRA_COMMANDS", ("fit", "tune"))
    text = demo.config_path.read_text()
    config = Path(str(demo.config_path) + ".tune.toml")
    config.write_text(text.replace("port = ", f"port = {free_port()}\n# was ", 1))
    argv = ["tune", "q4_k_m", "--config", str(config), "--candidates", "1,2"]
    argv += ["--gen-tokens", "16", "--prompt-tokens", "200", "--save", "tuned"]
    assert cli_main.main(argv) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "winner: -ngl 99 --n-cpu-moe" in out
    state = app_paths().state_file
    saved = tomllib.loads(state.read_text())["profiles"]["tuned"]
    assert saved["model"] == str(demo.models["q4_k_m"]) and saved["n_cpu_moe"] in (1, 2)
    state.unlink()
