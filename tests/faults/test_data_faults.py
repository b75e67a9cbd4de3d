"""Data faults: the disk fills while a reply is saved, another process locks the history, and model
files are corrupt or truncated."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import coder_tui.__main__ as cli_main
from coder_tui.core.config.loader import Profile
from coder_tui.core.demo.model import DemoSpec, write_f16_model
from coder_tui.core.errors import UserError
from coder_tui.core.gguf.layout import read_layout
from coder_tui.core.gguf.profile_info import profile_info
from coder_tui.core.store.history import HistoryStore, HistoryWriteError
from faults.conftest import Fault
from faults.helpers import python, spawn, stop

PROMPT = "refactor this"
REPLY = "".join(f"line {i} of a long answer\n" for i in range(4000))  # ~100 KB


@contextlib.contextmanager
def _small_disk(where: Path) -> Iterator[tuple[Path, bool]]:
    """A 2 MiB tmpfs (root can mount one), else a plain folder: (folder, really small). A reply of
    100 KB takes about 560 KB of WAL with its full-text index (``core/store/schema.py`` v3)."""
    where.mkdir()
    mounted = (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    try:
        yield where, mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def _fill(folder: Path) -> Path:
    """Write a file until the disk is full; removing it frees the space again."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for _ in range(1 << 16):  # bounded: 256 MiB at most
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def test_disk_full_while_saving(fault: Fault, tmp_path: Path) -> None:
    with _small_disk(tmp_path / "disk") as (disk, mounted):
        db = disk / "history.db"
        store = HistoryStore(db)
        try:
            conv = store.new_conversation()
            store.add_user_message(conv.id, PROMPT)
            msg_id = store.begin_reply(conv.id, "p", "model.gguf")
            filler = _fill(disk) if mounted else None
            if not mounted:  # no tmpfs: SQLite's own "database or disk is full" via a page cap
                pages = store._db.execute("PRAGMA page_count").fetchone()[0]
                store._db.execute(f"PRAGMA max_page_count = {pages}")
            with pytest.raises(HistoryWriteError) as info:
                store.update_reply(msg_id, REPLY[:50_000])
            with pytest.raises(HistoryWriteError):
                store.finish_reply(msg_id, REPLY, "complete")
            assert store.unsaved == (msg_id,)  # the whole reply waits in memory
            if filler is not None:
                filler.unlink()
            else:
                store._db.execute("PRAGMA max_page_count = 1073741823")
            assert store.flush()
        finally:
            store.close()
        with HistoryStore(db) as again:
            stored = again.messages(conv.id)
        assert stored[-1].status == "complete"
        fault.no_orphans([])
        fault.nothing_lost(stored, prompts=[PROMPT], replies=[REPLY])
        fault.says(str(info.value), f"cannot save chat history to {db}: the disk is full")


LOCKER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
db.execute("CREATE TABLE IF NOT EXISTS other_app (x)")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
"""


@pytest.mark.parametrize(("hold_s", "busy_s"), [(0.8, 5.0), (3.0, 0.5)], ids=["waits", "gives-up"])
def test_history_locked_by_another_process(
    fault: Fault, tmp_path: Path, hold_s: float, busy_s: float
) -> None:
    """Another process holds an EXCLUSIVE transaction: a short lock is waited out; a long one
    is reported in one line, and the text is saved once the lock is gone."""
    db = tmp_path / "history.db"
    store = HistoryStore(db, busy_timeout_s=busy_s)
    conv = store.new_conversation()
    store.add_user_message(conv.id, PROMPT)
    msg_id = store.begin_reply(conv.id, "p", "model.gguf")
    locker, lines = spawn(python("-c", LOCKER, str(db), str(hold_s)))
    message: str | None = None
    try:
        lines.wait("locked", 10)
        try:
            store.finish_reply(msg_id, REPLY, "complete")
        except HistoryWriteError as exc:
            message = str(exc)
            locker.wait(10)
            assert store.flush()
        assert locker.wait(10) == 0
        fault.no_orphans([locker.pid])
    finally:
        stop(locker)
        store.close()
    with HistoryStore(db) as again:
        stored = again.messages(conv.id)
    fault.nothing_lost(stored, prompts=[PROMPT], replies=[REPLY])
    expected = None
    if busy_s < hold_s:
        expected = (
            f"cannot save chat history to {db}: the database is locked by another process "
            f"(waited {busy_s:g} s)"
        )
    fault.says(message, expected)


def _tiny_model(path: Path) -> Path:
    spec = DemoSpec(
        name="t", n_layer=2, n_embd=256, n_head=4, n_head_kv=2, head_dim=64,
        n_expert=2, n_expert_used=1, n_ff_exp=256,
    )  # fmt: skip
    write_f16_model(path, spec)
    return path


def _corrupt(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "corrupt.gguf"
    path.write_bytes(b"NOPE" + os.urandom(4096))
    return path, f"{path}: not a readable GGUF file: not a GGUF file (bad magic)"


def _truncated(tmp_path: Path) -> tuple[Path, str]:
    path = _tiny_model(tmp_path / "truncated.gguf")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path, f"{path}: not a readable GGUF file: TRUNCATED"


@pytest.mark.parametrize(
    "make",
    [_corrupt, _truncated],
    ids=["corrupt", "truncated"],
)
def test_bad_gguf_gives_one_line(
    fault: Fault, tmp_path: Path, make: object, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broken model file: read_layout, the profile picker and ``coder-tui fit`` each say one
    line naming the file; nothing crashes or hangs."""
    path, expected = make(tmp_path)  # type: ignore[operator]
    original = path.read_bytes()
    with pytest.raises(UserError) as info:
        read_layout(path)
    message = str(info.value)
    if expected.endswith("TRUNCATED"):
        reason = message.removeprefix(f"{path}: ")  # the file's name says "truncated" too
        assert "truncated" in reason or "past the end of the file" in reason
        expected = message
    assert profile_info(Profile(name="p", model=path)).error == message
    code = cli_main.main(["fit", str(path), "--vram", "24GiB", "--no-fit-params"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"coder-tui: {message}"
    fault.no_orphans([])
    fault.nothing_lost(files={path: original})
    fault.says(message, expected)
