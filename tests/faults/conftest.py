"""The fault suite's recorder and report: every scenario checks three things and records them.

A scenario takes the ``fault`` fixture and calls, in any order:
- ``fault.no_orphans(pids, marker)``: every pid is gone (a zombie counts when this process is its
  parent, i.e. nobody reaped it), and no process's command line holds ``marker`` (the model path);
- ``fault.nothing_lost(stored, prompts, replies, files)``: the store holds every prompt and every
  streamed prefix exactly, and files that must not change (a config) did not;
- ``fault.says(actual, expected)``: the user-facing text is exactly ``expected``, one line, with
  no traceback.
A scenario survives when its test passed and all three were checked and held. At the end of the
run, ``pytest_terminal_summary`` prints one line computed from these records.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from coder_tui.core.store.history import StoredMessage

RECORDS = pytest.StashKey[list["Record"]]()
OUTCOME = pytest.StashKey[bool]()


@dataclass
class Record:
    name: str
    orphans: list[str] | None = None
    lost: list[str] | None = None
    message_ok: bool | None = None
    passed: bool = False

    @property
    def survived(self) -> bool:
        return self.passed and self.orphans == [] and self.lost == [] and self.message_ok is True


def _alive(proc: psutil.Process) -> bool:
    """Running, or a zombie that this process (its parent) failed to reap."""
    try:
        if proc.status() == psutil.STATUS_ZOMBIE:
            return proc.ppid() == os.getpid()
        return True
    except psutil.NoSuchProcess:
        return False


def _marked(marker: str) -> list[psutil.Process]:
    me = os.getpid()
    out = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if proc.pid != me and marker in " ".join(proc.info["cmdline"] or []):
                out.append(proc)
        except (psutil.Error, OSError):
            continue
    return out


class Fault:
    """The three checks of one scenario (each asserts, and records what it found)."""

    def __init__(self, record: Record) -> None:
        self.record = record

    def no_orphans(
        self, pids: Iterable[int | None] = (), marker: str | Path | None = None, wait_s: float = 5.0
    ) -> None:
        procs = []
        for pid in pids:
            if pid is None:
                continue
            try:
                procs.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                continue
        deadline = time.monotonic() + wait_s
        while True:
            found = [p for p in procs if _alive(p)]
            if marker is not None:
                found += [p for p in _marked(str(marker)) if _alive(p) and p not in found]
            if not found or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        self.record.orphans = []
        for proc in found:
            try:
                self.record.orphans.append(f"pid {proc.pid}: {' '.join(proc.cmdline())}")
                proc.kill()  # clean up, so one failure does not leak into the next scenario
            except psutil.Error:
                self.record.orphans.append(f"pid {proc.pid}")
        assert self.record.orphans == [], f"orphaned processes: {self.record.orphans}"

    def nothing_lost(
        self,
        stored: Sequence[StoredMessage] = (),
        prompts: Sequence[str] = (),
        replies: Sequence[str] = (),
        files: Mapping[Path, bytes] | None = None,
        prefixes: Sequence[str] = (),
        kept: Mapping[Path, str] | None = None,
    ) -> None:
        """``replies`` must be stored exactly, ``prefixes`` at the start of a stored reply;
        ``files`` must still hold these bytes and ``kept`` files must contain this text."""
        users = [m.content for m in stored if m.role == "user"]
        answers = [m.content for m in stored if m.role == "assistant"]
        lost = [f"prompt {p!r}" for p in prompts if p not in users]
        lost += [f"reply {r[:40]!r}..." for r in replies if r not in answers]
        lost += [
            f"prefix {r[:40]!r}..." for r in prefixes if not any(a.startswith(r) for a in answers)
        ]
        for path, data in (files or {}).items():
            if path.read_bytes() != data:
                lost.append(f"file {path} was changed")
        for path, text in (kept or {}).items():
            if not path.exists() or text not in path.read_text(errors="replace"):
                lost.append(f"{text!r} missing from {path}")
        self.record.lost = lost
        assert lost == [], f"lost: {lost}"

    def says(self, actual: str | None, expected: str | None) -> None:
        """``expected`` None: the user must be told nothing (no spurious notice)."""
        if expected is None:
            ok = actual is None
        else:
            ok = actual == expected and "\n" not in actual and "Traceback" not in actual
        self.record.message_ok = ok and self.record.message_ok is not False
        assert actual == expected


@pytest.fixture
def fault(request: pytest.FixtureRequest) -> Iterator[Fault]:
    record = Record(request.node.name)
    yield Fault(record)
    record.passed = request.node.stash.get(OUTCOME, False)
    request.config.stash.setdefault(RECORDS, []).append(record)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[OUTCOME] = report.passed


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    records = terminalreporter.config.stash.get(RECORDS, [])
    if not records:
        return
    survived = sum(r.survived for r in records)
    orphans = sum(len(r.orphans or []) for r in records)
    lost = sum(len(r.lost or []) for r in records)
    unchecked = [r.name for r in records if None in (r.orphans, r.lost, r.message_ok) and r.passed]
    for name in unchecked:
        terminalreporter.write_line(f"fault suite: {name} did not record all three checks")
    terminalreporter.write_line(
        f"fault suite: {len(records)} scenarios run, {survived} survived, "
        f"{orphans} orphans found, {lost} messages lost"
    )


@dataclass
class Env:
    """What a scenario needs around a fake server: a model path (the orphan marker), dirs."""

    binary: Path
    model: Path
    run_dir: Path
    log_dir: Path
    db: Path
    extra: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def env(tmp_path: Path, fake_server_binary: Path) -> Env:
    model = tmp_path / "models" / "model.gguf"
    model.parent.mkdir()
    model.write_bytes(b"GGUF")
    return Env(fake_server_binary, model, tmp_path / "run", tmp_path / "logs", tmp_path / "h.db")
