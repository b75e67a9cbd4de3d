"""Fuzz: random bytes through every path that prints text from a model, a server, a GGUF or a
file; no escape sequence, C0/C1 control or bidi/invisible format control reaches the output."""

from __future__ import annotations

import io
from collections import deque
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coder_tui.__main__ import _error_lines
from coder_tui.core.bench.compare import CompareResult, CompareRun, to_markdown
from coder_tui.core.chat.events import Delta, parse_chunk
from coder_tui.core.config.loader import parse_config
from coder_tui.core.errors import ConfigError, UserError
from coder_tui.core.exporter.http import ProfileLabels, PrometheusExporter
from coder_tui.core.metrics.series import History
from coder_tui.core.metrics.types import GpuDeviceSample, GpuSnapshot, MetricsSnapshot
from coder_tui.core.sanitize import SafeTextStream, decode_output, sanitize, sanitize_line
from coder_tui.core.server.caps import parse_help
from coder_tui.core.server.log_sink import LogSink
from coder_tui.core.server.preflight import model_problem
from coder_tui.core.store.markdown import conversation_markdown
from coder_tui.core.store.schema import Conversation, StoredMessage
from faults.helpers import HOSTILE, hostile_chars

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Random bytes, and random bytes salted with the hostile corpus (plain random bytes seldom make
# a whole OSC sequence or a bidi override).
RAW = st.one_of(
    st.binary(max_size=300),
    st.lists(st.one_of(st.binary(max_size=20), st.just(HOSTILE.encode())), max_size=8).map(
        b"".join
    ),
)


def _text(data: bytes) -> str:
    return decode_output(data)


def _no_line_breaks(text: str) -> None:
    assert "\n" not in text and "\r" not in text


@FUZZ
@given(RAW)
def test_sanitizers_and_the_cli_stream(data: bytes) -> None:
    text = _text(data)
    out = io.StringIO()
    print(text, file=SafeTextStream(out))
    assert hostile_chars(out.getvalue()) == []
    assert hostile_chars(sanitize(text)) == []
    line = sanitize_line(text)
    assert hostile_chars(line) == []
    _no_line_breaks(line)


@FUZZ
@given(st.lists(RAW, max_size=5))
def test_server_log_lines(chunks: list[bytes]) -> None:
    """What ``serve`` prints and the TUI's log pane shows, and what the log file gets."""
    shown: list[str] = []
    sink = LogSink(deque(maxlen=10), lambda text, _src: shown.append(text), lambda t: t)
    for chunk in chunks:
        kept = sink.line(chunk)
        assert hostile_chars(kept) == []
        _no_line_breaks(kept)
    assert all(hostile_chars(s) == [] for s in shown)


@FUZZ
@given(RAW, RAW)
def test_prometheus_labels(model: bytes, gpu: bytes) -> None:
    snap = MetricsSnapshot(
        time_s=1.0,
        gpu=GpuSnapshot(available=True, devices=(GpuDeviceSample(index=0, name=_text(gpu)),)),
        host=None,
        server=None,
        moe=None,
        history=History(),
    )
    exporter = PrometheusExporter("127.0.0.1", 0)
    exporter.update(snap, ProfileLabels(profile="p", model=_text(model)))
    scraped = exporter.render()
    assert hostile_chars(scraped) == []
    assert all(line.count(" ") >= 1 for line in scraped.splitlines())  # no split sample lines


@FUZZ
@given(RAW, RAW, RAW)
def test_exported_markdown(title: bytes, content: bytes, model: bytes) -> None:
    conv = Conversation(id=1, title=_text(title), created_at=0.0, updated_at=0.0)
    msg = StoredMessage(
        id=1, conversation_id=1, role="assistant", content=_text(content), status="done",
        profile=_text(model), model=_text(model), created_at=0.0, updated_at=0.0,
    )  # fmt: skip
    assert hostile_chars(conversation_markdown(conv, [msg])) == []
    run = CompareRun("a", _text(content), "done", None, None, None, None, None)
    report = to_markdown(CompareResult(_text(title), "a", "b", (run,), (run,)))
    assert hostile_chars(report) == []


@FUZZ
@given(RAW)
def test_chat_deltas(data: bytes) -> None:
    chunk = {"choices": [{"index": 0, "delta": {"content": _text(data)}, "finish_reason": None}]}
    for event in parse_chunk(chunk, 0.0):
        if isinstance(event, Delta):
            assert hostile_chars(event.text) == []


@FUZZ
@given(RAW)
def test_server_version_and_help(data: bytes) -> None:
    caps = parse_help(_text(data), _text(data))
    assert hostile_chars(caps.version) == []
    _no_line_breaks(caps.version)


@FUZZ
@given(RAW, RAW)
def test_config_errors(key: bytes, value: bytes) -> None:
    """Key names and values from the file end up in error lines: one line each, nothing raw."""
    k = _text(key).replace("\\", "\\\\").replace('"', '\\"')
    v = _text(value).replace("\\", "\\\\").replace('"', '\\"')
    k = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in k if ord(c) < 0x10000)
    v = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in v if ord(c) < 0x10000)
    text = f'[server]\n"{k}" = "{v}"\nport = "{v}"\n[profiles.p]\nmodel = "m.gguf"\n'
    try:
        parse_config(text, Path("/x/c.toml"), check_files=False)
    except ConfigError as exc:
        lines = _error_lines(exc)
        assert len(lines) == len(exc.problems)
        assert all(hostile_chars(line) == [] for line in lines)
    except UserError as exc:  # pragma: no cover - parse_config raises only ConfigError
        raise AssertionError(exc) from None


@FUZZ
@given(st.binary(min_size=1, max_size=60))
def test_model_path_problems(name: bytes) -> None:
    """A file name is bytes on Linux: an undecodable one comes as surrogates, shown visibly."""
    raw = name.replace(b"/", b"_").replace(b"\0", b"_")
    path = Path("/nonexistent-dir") / raw.decode("utf-8", "surrogateescape")
    reason = model_problem(path)
    assert reason is not None
    assert hostile_chars(reason) == []
    _no_line_breaks(reason)
