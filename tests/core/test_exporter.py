"""The Prometheus exporter: names, labels and units for fabricated snapshots, promtool's lint, the
HTTP server's start and stop, the ``export`` command's address checks, and the Grafana dashboard."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from coder_tui.core.config.loader import Profile
from coder_tui.core.errors import UserError
from coder_tui.core.exporter.http import (
    ProfileLabels,
    PrometheusExporter,
    SnapshotCollector,
    check_listen,
    parse_listen,
    quant_of,
)
from coder_tui.core.metrics.series import History
from coder_tui.core.metrics.types import (
    NO_GPU,
    Bound,
    GpuDeviceSample,
    GpuSnapshot,
    HostSnapshot,
    MetricsSnapshot,
    MoeSample,
    Placement,
    ProcessSample,
    ServerPhase,
    ServerSample,
    SlotSample,
    TokenTraffic,
)

ROOT = Path(__file__).resolve().parent.parent.parent
DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"
PROFILE = Profile(
    name="iq2", model=Path("/m/Qwen3-Coder-Next-UD-IQ2_XXS.gguf"), n_gpu_layers=42, n_cpu_moe=10
)
LABELS = ProfileLabels.from_profile(PROFILE)


def _host() -> HostSnapshot:
    return HostSnapshot(
        cpu_percent=50.0,
        cpu_percent_per_core=(40.0, 60.0),
        ram_total_bytes=64 << 30,
        ram_used_bytes=20 << 30,
        ram_available_bytes=44 << 30,
        swap_total_bytes=8 << 30,
        swap_used_bytes=0,
        swap_in_bytes_per_s=0.0,
        swap_out_bytes_per_s=None,
        swapping=False,
        server=ProcessSample(pid=42, alive=True, cpu_percent=250.0, rss_bytes=5 << 30, threads=17),
    )


def _server() -> ServerSample:
    slot = SlotSample(
        id=0, n_ctx=4096, is_processing=True, phase=ServerPhase.GENERATING, kv_fill_ratio=0.25
    )
    return ServerSample(
        phase=ServerPhase.GENERATING,
        interval_s=1.0,
        metrics_available=True,
        slots_available=True,
        prompt_tokens_per_s=0.0,
        generation_tokens_per_s=31.5,
        prompt_tokens_total=1000,
        generation_tokens_total=500,
        busy_slots=1,
        slots=(slot,),
        kv_used_tokens=1024,
        kv_fill_ratio=0.25,
    )


def _moe(has_gpu: bool) -> MoeSample:
    placement = Placement(
        n_layers=4, gpu_layers=(), output_on_gpu=False, cpu_expert_layers=(0, 1), has_gpu=has_gpu
    )
    traffic = TokenTraffic(1000, 0, 800, 10_000, 0, 0)
    return MoeSample(
        placement=placement,
        traffic=traffic,
        ram_bandwidth_bytes_per_s=50e9,
        vram_bandwidth_bytes_per_s=None,
        decode_ceiling_tokens_per_s=50e6,
        generation_tokens_per_s=31.5,
        ram_read_bytes_per_s=31_500.0,
        vram_read_bytes_per_s=None,
        efficiency=0.5,
        bound=Bound.RAM_BANDWIDTH,
    )


def snapshot(*, gpu: bool) -> MetricsSnapshot:
    """A snapshot of a generating server, with one H100 or none."""
    if gpu:
        device = GpuDeviceSample(
            index=0,
            name="NVIDIA H100",
            vram_total_bytes=80 << 30,
            vram_used_bytes=30 << 30,
            vram_free_bytes=50 << 30,
            server_vram_bytes=29 << 30,
            gpu_util_percent=87.0,
            power_w=300.0,
            temperature_c=60.0,
            pcie_rx_bytes_per_s=1e9,
            pcie_tx_bytes_per_s=2e8,
        )
        g = GpuSnapshot(available=True, devices=(device, GpuDeviceSample(index=1, lost=True)))
    else:
        g = GpuSnapshot(available=False, reason=NO_GPU)
    return MetricsSnapshot(
        time_s=1_700_000_000.0,
        gpu=g,
        host=_host(),
        server=_server(),
        moe=_moe(gpu),
        history=History(),
    )


def _filled(obj: Any) -> Any:
    """``obj`` with every unknown number set to 1 (so every series the exporter knows appears)."""
    changes: dict[str, Any] = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if value is None and ("float" in str(f.type) or "int" in str(f.type)):
            changes[f.name] = 1
        elif is_dataclass(value) and not isinstance(value, type):
            changes[f.name] = _filled(value)
        elif isinstance(value, tuple) and value and is_dataclass(value[0]):
            changes[f.name] = tuple(_filled(v) for v in value)
    return replace(obj, **changes)


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
    return out


def _render(snap: MetricsSnapshot) -> str:
    exporter = PrometheusExporter()
    exporter.update(snap, LABELS)
    return exporter.render()


# -- names, labels, units ---------------------------------------------------------------------------
def test_profile_labels_and_quant_from_file_names() -> None:
    assert ProfileLabels("iq2", "Qwen3-Coder-Next-UD-IQ2_XXS", "IQ2_XXS", "42", "10") == LABELS
    assert quant_of("demo-small-Q4_K_M.gguf") == "Q4_K_M"
    assert quant_of("model-q8_0.gguf") == "Q8_0"
    assert quant_of("llama-3-8b-f16.gguf") == "F16"
    assert quant_of("model.gguf") == ""
    assert ProfileLabels.from_model_path("/x/demo-small-Q8_0.gguf").quant == "Q8_0"


def test_without_gpu_there_is_gpu_available_0_and_no_vram() -> None:
    s = _samples(_render(snapshot(gpu=False)))
    assert s["coder_tui_gpu_available"] == [({}, 0.0)]
    assert not [name for name in s if name.startswith("coder_tui_gpu_") and "available" not in name]


def test_with_gpu_vram_pcie_and_utilisation_in_base_units() -> None:
    s = _samples(_render(snapshot(gpu=True)))
    assert s["coder_tui_gpu_available"] == [({}, 1.0)]
    gpu0 = {"gpu": "0", "gpu_name": "NVIDIA H100"}
    assert s["coder_tui_gpu_memory_used_bytes"] == [(gpu0, float(30 << 30))]
    assert s["coder_tui_gpu_utilization_ratio"] == [(gpu0, 0.87)]
    assert s["coder_tui_gpu_pcie_rx_bytes_per_second"] == [(gpu0, 1e9)]
    assert s["coder_tui_gpu_temperature_celsius"] == [(gpu0, 60.0)]
    [(labels, value)] = s["coder_tui_gpu_server_memory_bytes"]
    assert labels["quant"] == "IQ2_XXS" and labels["gpu"] == "0" and value == float(29 << 30)
    # The lost device has only its flag; fields never read (mem util) have no series at all.
    assert ({"gpu": "1", "gpu_name": ""}, 1.0) in s["coder_tui_gpu_lost"]
    assert "coder_tui_gpu_memory_utilization_ratio" not in s


def test_server_and_moe_series_carry_the_profile_labels() -> None:
    s = _samples(_render(snapshot(gpu=False)))
    want = {"profile": "iq2", "model": "Qwen3-Coder-Next-UD-IQ2_XXS", "quant": "IQ2_XXS"}
    want |= {"ngl": "42", "n_cpu_moe": "10"}
    assert s["coder_tui_server_generation_tokens_per_second"] == [(want, 31.5)]
    assert s["coder_tui_server_kv_fill_ratio"] == [(want, 0.25)]
    assert s["coder_tui_moe_ram_read_bytes_per_second"] == [(want, 31_500.0)]
    assert s["coder_tui_moe_efficiency_ratio"] == [(want, 0.5)]
    assert s["coder_tui_profile_info"] == [(want, 1.0)]
    assert s["coder_tui_server_generation_tokens_total"] == [(want, 500.0)]
    phases = {lb["phase"]: v for lb, v in s["coder_tui_server_phase"]}
    assert phases == {"down": 0, "loading": 0, "idle": 0, "prompt": 0, "generating": 1}
    assert s["coder_tui_server_process_cpu_cores"] == [({}, 2.5)]
    assert s["coder_tui_host_cpu_utilization_ratio"] == [({}, 0.5)]
    assert "coder_tui_host_swap_out_bytes_per_second" not in s  # unknown: no series, not NaN


def test_names_follow_the_conventions() -> None:
    text = _render(snapshot(gpu=True))
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))
    units = ("_bytes", "_seconds", "_per_second", "_ratio", "_watts", "_celsius", "_info", "_total")
    for name, kind in types.items():
        assert name.startswith("coder_tui_"), name
        assert (kind == "counter") == name.endswith("_total"), name
        assert not re.search(r"(percent|_mb|_gb|_ms|_kb)", name), name
        if "bytes" in name or "seconds" in name:
            assert name.endswith(units) or name.endswith(("_per_token", "_per_ubatch")), name


def test_collector_is_empty_before_the_first_snapshot_and_follows_label_changes() -> None:
    collector = SnapshotCollector()
    assert list(collector.collect()) == []
    collector.update(snapshot(gpu=False), LABELS)
    collector.set_labels(ProfileLabels(profile="other"))
    names = {m.name: m for m in collector.collect()}
    assert names["coder_tui_profile_info"].samples[0].labels["profile"] == "other"


def _promtool() -> str | None:
    found = shutil.which("promtool")
    if found is None and os.environ.get("CODER_TUI_REQUIRE_SERVER"):
        pytest.fail("promtool not found (CI installs it with scripts/install_prometheus.sh)")
    return found


@pytest.mark.parametrize("gpu", [True, False], ids=["gpu", "no-gpu"])
def test_promtool_check_metrics_is_clean(gpu: bool) -> None:
    promtool = _promtool()
    if promtool is None:
        if os.environ.get("CODER_TUI_REQUIRE_SERVER"):  # CI installs it with prometheus
            pytest.fail("promtool not found (scripts/install_prometheus.sh installs it)")
        pytest.skip("promtool not installed")
    text = _render(snapshot(gpu=gpu))
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0 and not done.stdout.strip() and not done.stderr.strip(), (
        done.stdout + done.stderr
    )


# -- HTTP server ---------------------------------------------------------------------------------
def test_exporter_serves_and_stops() -> None:
    exporter = PrometheusExporter("127.0.0.1", 0)
    exporter.update(snapshot(gpu=False), LABELS)
    with exporter:
        assert exporter.port > 0
        resp = httpx.get(exporter.url, timeout=5, trust_env=False)
        assert resp.status_code == 200
        assert "coder_tui_gpu_available 0.0" in resp.text
        port = exporter.port
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2, trust_env=False)
    exporter.stop()  # idempotent


def test_exporter_reports_a_taken_port() -> None:
    with PrometheusExporter("127.0.0.1", 0) as first:
        second = PrometheusExporter("127.0.0.1", first.port)
        with pytest.raises(UserError, match="cannot listen"):
            second.start()


def test_listen_addresses() -> None:
    assert parse_listen("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_listen("[::1]:9") == ("::1", 9)
    for bad in ("9464", "host:", ":80", "h:99999"):
        with pytest.raises(UserError):
            parse_listen(bad)
    # The one loopback rule (core/security.py): every spelling of this machine passes.
    for host in ("127.0.0.2", "127.1", "::1", "::ffff:127.0.0.1", "localhost", "LocalHost"):
        check_listen(host, allow_remote=False)
    for host in ("0.0.0.0", "::", "192.168.1.2", "box", "::ffff:10.0.0.1"):
        with pytest.raises(UserError, match="--allow-remote"):
            check_listen(host, allow_remote=False)
    check_listen("0.0.0.0", allow_remote=True)


def test_cli_refuses_a_remote_listen_address(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("coder_tui.__main__.EXTRA_COMMANDS", ("export",))
    from coder_tui.__main__ import main

    assert main(["export", "--listen", "0.0.0.0:9464", "--url", "http://127.0.0.1:1"]) == 2
    assert "--allow-remote" in capsys.readouterr().err
    assert main(["export", "--listen", "nonsense", "--url", "http://127.0.0.1:1"]) == 2


def test_cli_attached_to_a_dead_server_exports_it_as_down(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr("coder_tui.__main__.EXTRA_COMMANDS", ("export",))
    monkeypatch.setenv("CODER_TUI_CONFIG", str(tmp_path / "absent.toml"))
    from coder_tui.__main__ import main
    from coder_tui.core.server.ports import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    argv = ["export", "--listen", "127.0.0.1:0", "--url", dead, "--interval", "0.1"]
    assert main([*argv, "--duration", "0.3"]) == 0
    out = capsys.readouterr().out
    assert "serving metrics at http://127.0.0.1:" in out and "model unknown" in out


# -- the Grafana dashboard -----------------------------------------------------------------------
def test_grafana_dashboard_reads_only_exported_metrics() -> None:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    produced = set(_samples(_render(_filled(snapshot(gpu=True)))))
    produced |= {n.removesuffix("_total") for n in produced}  # family names of counters
    var = [v for v in board["templating"]["list"] if v["name"] == "datasource"]
    assert var and var[0]["type"] == "datasource" and var[0]["query"] == "prometheus"
    exprs = []
    for panel in board["panels"]:
        if panel.get("type") == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            exprs.append(target["expr"])
    titles = " ".join(p["title"].lower() for p in board["panels"])
    for topic in ("tokens/s", "vram", "pcie", "cpu-moe", "kv"):
        assert topic in titles, topic
    assert exprs
    for expr in exprs:
        for name in re.findall(r"\bcoder_tui_[a-z0-9_]+", expr):
            assert name in produced, f"{name} in {expr!r} is not exported"
