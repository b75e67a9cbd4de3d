"""Hostile text on every output path: one corpus (``HOSTILE``: OSC 52, clear screen, title, C1,
bidi overrides and isolates, zero-width and separators, carriage return) through the CLI's
commands and log lines, Prometheus labels, exported Markdown, the chat's deltas and the compare
report. Nothing a terminal would obey reaches the output; everything else is shown."""

from __future__ import annotations

import dataclasses
import urllib.request
from pathlib import Path

import pytest

import coder_tui.__main__ as cli_main
from coder_tui.core.chat.events import Delta, parse_chunk
from coder_tui.core.exporter.http import ProfileLabels, PrometheusExporter
from coder_tui.core.metrics.series import History
from coder_tui.core.metrics.types import GpuDeviceSample, GpuSnapshot, MetricsSnapshot
from coder_tui.core.paths import app_paths
from coder_tui.core.server.ports import free_port
from coder_tui.core.store.markdown import conversation_markdown
from coder_tui.core.store.schema import Conversation, StoredMessage
from faults.conftest import Env, Fault
from faults.helpers import (
    HOSTILE,
    HOSTILE_SHOWN,
    hostile_chars,
    manager,
    profile,
    python,
    spawn,
    stop,
    tiny_gguf,
    write_config,
)

# The same text as Markdown keeps newlines and drops the carriage return (it is no line break).
MARKDOWN_SHOWN = HOSTILE_SHOWN.replace("⟨U+000D⟩", "")


def test_serve_shows_a_hostile_log_line(fault: Fault, env: Env, tmp_path: Path) -> None:
    """``coder-tui serve`` prints llama-server's log: an OSC 52 line must not set the clipboard."""
    config = write_config(tmp_path / "c.toml", env.binary, free_port(), env.model)
    proc, lines = spawn(python("-m", "coder_tui", "serve", "--config", str(config)),
                        FAKE_LOG_LINE=HOSTILE)  # fmt: skip
    try:
        shown = lines.wait("  | evil", 20)
        lines.wait("[coder-tui] ready at", 20)
        proc.terminate()
        assert proc.wait(15) == 0
        rest = lines.rest()
    finally:
        stop(proc)
    assert [bad for line in rest for bad in hostile_chars(line)] == []
    fault.no_orphans([proc.pid], env.model)
    fault.nothing_lost()
    fault.says(shown, f"  | {HOSTILE_SHOWN}")


def test_profiles_check_shows_a_hostile_server_version(
    fault: Fault, env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("FAKE_VERSION", HOSTILE)
    model = tiny_gguf(tmp_path / "ok.gguf")
    config = write_config(tmp_path / "c.toml", env.binary, free_port(), model)
    assert cli_main.main(["profiles", "check", "--config", str(config)]) == 0
    out = capsys.readouterr()
    assert hostile_chars(out.out + out.err) == []
    fault.no_orphans([], env.binary)
    fault.nothing_lost()
    fault.says(
        out.out.splitlines()[-1], f"all 1 profiles fit {env.binary} (version {HOSTILE_SHOWN})"
    )


def test_profiles_show_and_errors_with_a_hostile_key(
    fault: Fault, env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A profile name and an unknown key holding escapes (TOML \\u escapes) are shown, not run."""
    config = tmp_path / "c.toml"
    escaped = HOSTILE.encode("unicode_escape").decode().replace("\\x", "\\u00")
    config.write_text(
        f'[server]\nbinary = "{env.binary}"\n"{escaped}" = 1\n[profiles.p]\nmodel = "{env.model}"\n'
    )
    assert cli_main.main(["profiles", "show", "p", "--config", str(config)]) == 2
    out = capsys.readouterr()
    assert hostile_chars(out.out + out.err) == []
    fault.no_orphans([], env.model)
    fault.nothing_lost()
    fault.says(
        out.err.strip(),
        f'coder-tui: c.toml:3: server."{HOSTILE_SHOWN}": unknown key; known keys: binary, host, '
        "port, ready_timeout_s, stop_grace_s, log_dir, allow_remote, api_key_env",
    )


def test_fit_shows_a_hostile_model_name(
    fault: Fault, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``general.name`` comes from the GGUF file: whoever made the file chose it."""
    from coder_tui.core.demo.shape_model import RECIPES, SHAPES, write_shape_model

    shape = dataclasses.replace(SHAPES["qwen3moe-tiny"], label=HOSTILE)
    (model,) = write_shape_model(tmp_path / "m.gguf", shape, RECIPES["Q8_0"])
    code = cli_main.main(["fit", str(model), "--vram", "8GiB", "--no-fit-params"])
    out = capsys.readouterr()
    assert code in (0, 1) and hostile_chars(out.out + out.err) == []
    line = next(ln for ln in out.out.splitlines() if ln.startswith("model: "))
    fault.no_orphans([], model)
    fault.nothing_lost()
    fault.says(line.split(",")[0], f"model: {HOSTILE_SHOWN} shape-only Q8_0")


async def test_export_shows_a_hostile_model_path(
    fault: Fault, env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``export --url`` names the model the server reports in ``/props``."""
    mgr = manager(env.binary, free_port(), tmp_path)
    ready = await mgr.start(profile(env.model, FAKE_PROPS_MODEL=f"/models/{HOSTILE}.gguf"))
    try:
        import asyncio

        args = ["export", "--url", mgr.url, "--listen", "127.0.0.1:0", "--duration", "0.5"]
        code = await asyncio.to_thread(cli_main.main, args)
    finally:
        await mgr.stop()
    out = capsys.readouterr()
    assert code == 0 and hostile_chars(out.out + out.err) == []
    line = next(ln for ln in out.out.splitlines() if ln.startswith("[coder-tui] watching"))
    fault.no_orphans([ready.pid], env.model)
    fault.nothing_lost()
    fault.says(line, f"[coder-tui] watching {mgr.url} ({HOSTILE_SHOWN})")


def test_metrics_labels_hold_no_hostile_bytes(fault: Fault) -> None:
    """Label values are sanitised, then escaped per the exposition format (quote, backslash)."""
    device = GpuDeviceSample(index=0, name=f'{HOSTILE}"\\')
    snap = MetricsSnapshot(
        time_s=1.0,
        gpu=GpuSnapshot(available=True, devices=(device,)),
        host=None,
        server=None,
        moe=None,
        history=History(),
    )
    with PrometheusExporter("127.0.0.1", 0) as exporter:
        exporter.update(snap, ProfileLabels(profile="p", model=HOSTILE))
        scraped = urllib.request.urlopen(exporter.url, timeout=5).read().decode()
    assert hostile_chars(scraped) == []
    line = next(ln for ln in scraped.splitlines() if ln.startswith("coder_tui_profile_info{"))
    fault.no_orphans([])
    fault.nothing_lost()
    fault.says(
        line,
        f'coder_tui_profile_info{{model="{HOSTILE_SHOWN}",n_cpu_moe="",ngl="",profile="p",'
        'quant=""} 1.0',
    )


def test_bench_show_and_history_with_a_hostile_server_version(
    fault: Fault, capsys: pytest.CaptureFixture[str]
) -> None:
    from coder_tui.core.bench.store import BenchStore
    from core.test_bench_support import two_profile_result

    result = two_profile_result([10.0, 11.0], [12.0, 13.0])
    result = dataclasses.replace(
        result, machine=dataclasses.replace(result.machine, llama_server_version=HOSTILE)
    )
    with BenchStore(app_paths().history_db) as store:
        run_id = store.save(result)
    assert cli_main.main(["bench", "show", str(run_id)]) == 0
    assert cli_main.main(["bench", "history"]) == 0
    out = capsys.readouterr()
    assert hostile_chars(out.out + out.err) == []
    line = next(ln for ln in out.out.splitlines() if "llama-server" in ln and "evil" in ln)
    fault.no_orphans([])
    fault.nothing_lost()
    fault.says(line[line.index("evil") :][: len(HOSTILE_SHOWN)], HOSTILE_SHOWN)


def test_exported_markdown_holds_no_hostile_bytes(fault: Fault) -> None:
    conv = Conversation(id=1, title=HOSTILE, created_at=0.0, updated_at=0.0)
    reply = StoredMessage(
        id=2, conversation_id=1, role="assistant", content=f"line one\n{HOSTILE}\n",
        status="done", profile="p", model=HOSTILE, created_at=0.0, updated_at=0.0,
    )  # fmt: skip
    text = conversation_markdown(conv, [reply])
    assert hostile_chars(text) == []
    fault.no_orphans([])
    fault.nothing_lost(stored=[dataclasses.replace(reply, content=text)], prefixes=["# evil"])
    fault.says(text.splitlines()[0], f"# {HOSTILE_SHOWN}")


def test_chat_delta_shows_bidi_controls(fault: Fault) -> None:
    """A model's reply with escapes and bidi controls: the chat view gets them shown."""
    events = parse_chunk({"choices": [{"index": 0, "delta": {"content": HOSTILE}}]}, 0.0)
    (delta,) = events
    assert isinstance(delta, Delta)
    assert hostile_chars(delta.text) == []
    fault.no_orphans([])
    fault.nothing_lost()
    fault.says(delta.text, MARKDOWN_SHOWN)


def test_compare_report_holds_no_hostile_bytes(fault: Fault) -> None:
    from coder_tui.core.bench.compare import CompareResult, CompareRun, to_markdown

    def run(name: str) -> CompareRun:
        return CompareRun(profile=name, text=f"{HOSTILE}\n", status="done", ttft_s=0.1,
                          prompt_tokens_per_s=10.0, generation_tokens_per_s=5.0, tokens=3,
                          load_time_s=None)  # fmt: skip

    result = CompareResult(prompt=HOSTILE, a="a", b="b", runs_a=(run("a"),), runs_b=(run("b"),))
    text = to_markdown(result)
    assert hostile_chars(text) == []
    fault.no_orphans([])
    fault.nothing_lost()
    fault.says(next(ln for ln in text.splitlines() if ln.startswith("evil")), MARKDOWN_SHOWN)


def test_config_error_with_a_newline_in_a_path_is_one_line(
    fault: Fault, env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model path with a newline must not split the error into a fake second line."""
    config = tmp_path / "c.toml"
    config.write_text(f'[server]\nbinary = "{env.binary}"\n[profiles.p]\nmodel = "a\\nb.gguf"\n')
    assert cli_main.main(["profiles", "check", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    fault.no_orphans([], env.model)
    fault.nothing_lost()
    fault.says(
        err.strip(),
        f"coder-tui: c.toml:4: profiles.p.model: expected an existing GGUF file, "
        f"{tmp_path}/a⟨U+000A⟩b.gguf does not exist",
    )
