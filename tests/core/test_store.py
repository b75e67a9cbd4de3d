"""The SQLite history: migrations, refusing a newer schema, crash recovery, many writers, export."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from coder_tui.core.errors import UserError
from coder_tui.core.store.history import SCHEMA_VERSION, HistoryStore, status_for_end


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "coder-tui" / "history.sqlite3"


def test_creates_schema_with_private_modes(db_path: Path) -> None:
    with HistoryStore(db_path) as store:
        assert store.list_conversations() == []
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(db_path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(db_path.parent.parent.stat().st_mode) == 0o700
    db = sqlite3.connect(db_path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_migrates_an_empty_existing_file(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.touch()
    with HistoryStore(db_path) as store:
        conv = store.new_conversation("x")
        assert store.conversation(conv.id) == conv
    assert not list(db_path.parent.glob("*.bak"))  # nothing to back up at version 0


def test_refuses_a_newer_schema(db_path: Path) -> None:
    HistoryStore(db_path).close()
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA user_version = 999")
    db.close()
    with pytest.raises(UserError) as info:
        HistoryStore(db_path)
    assert str(info.value) == (
        f"history.sqlite3: schema version 999 is newer than this coder-tui understands "
        f"({SCHEMA_VERSION}); upgrade coder-tui"
    )


def test_backup_before_migrating_an_existing_db(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from coder_tui.core.store import db as store_mod  # migrations run there

    with HistoryStore(db_path) as store:
        store.new_conversation("kept")

    def v2(db: sqlite3.Connection) -> None:
        db.execute("ALTER TABLE conversations ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0")

    monkeypatch.setattr(store_mod, "MIGRATIONS", (*store_mod.MIGRATIONS, v2))
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with HistoryStore(db_path) as store:
        assert [c.title for c in store.list_conversations()] == ["kept"]
    backup = db_path.with_name(f"history.sqlite3.v{SCHEMA_VERSION}.bak")
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    old = sqlite3.connect(backup)
    assert old.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert old.execute("SELECT title FROM conversations").fetchall() == [("kept",)]
    old.close()
    new = sqlite3.connect(db_path)
    assert new.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    assert new.execute("SELECT pinned FROM conversations").fetchall() == [(0,)]
    new.close()


def test_failed_migration_rolls_back(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from coder_tui.core.store import db as store_mod  # migrations run there

    HistoryStore(db_path).close()

    def broken(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE half (x)")
        raise RuntimeError("bug in migration")

    monkeypatch.setattr(store_mod, "MIGRATIONS", (*store_mod.MIGRATIONS, broken))
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(RuntimeError):
        HistoryStore(db_path)
    db = sqlite3.connect(db_path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert not db.execute("SELECT name FROM sqlite_master WHERE name = 'half'").fetchall()
    db.close()


def test_conversation_lifecycle(db_path: Path) -> None:
    with HistoryStore(db_path) as store:
        a = store.new_conversation(system_prompt="be brief")
        b = store.new_conversation("second")
        store.add_user_message(a.id, "\n  Write a parser\nfor SSE please", profile="q4")
        titles = [(c.id, c.title) for c in store.list_conversations()]
        assert titles == [(a.id, "Write a parser"), (b.id, "second")]  # a most recently active
        assert store.last_conversation() == store.list_conversations()[0]
        store.rename(a.id, "renamed")
        conv = store.conversation(a.id)
        assert conv is not None and conv.title == "renamed" and conv.system_prompt == "be brief"
        assert store.conversation(b.id).system_prompt is None  # type: ignore[union-attr]


def test_reply_flow_and_statuses(db_path: Path) -> None:
    with HistoryStore(db_path) as store:
        conv = store.new_conversation("t")
        user = store.add_user_message(conv.id, "hi", profile="q4_k_m")
        reply = store.begin_reply(conv.id, "q4_k_m", "demo-Q4_K_M.gguf")
        assert store.message(reply) is not None and store.message(reply).status == "streaming"  # type: ignore[union-attr]
        store.update_reply(reply, "Hel")
        store.finish_reply(
            reply,
            "Hello",
            status_for_end("done"),
            prompt_tokens=5,
            completion_tokens=2,
            ttft_s=0.25,
            prompt_per_second=100.0,
            predicted_per_second=40.0,
            finish_reason="stop",
        )
        msgs = store.messages(conv.id)
        assert [m.id for m in msgs] == [user.id, reply]
        assert (
            msgs[0].role == "user" and msgs[0].status == "complete" and msgs[0].profile == "q4_k_m"
        )
        last = msgs[1]
        assert (last.role, last.content, last.status, last.model) == (
            "assistant",
            "Hello",
            "complete",
            "demo-Q4_K_M.gguf",
        )
        assert (last.completion_tokens, last.ttft_s, last.finish_reason) == (2, 0.25, "stop")
    assert status_for_end("connection_lost") == "interrupted"
    assert status_for_end("cancelled") == "cancelled"
    assert status_for_end("timed_out") == status_for_end("bad_stream") == "error"


_CRASH = """
import os, sys
from pathlib import Path
from coder_tui.core.store.history import HistoryStore
store = HistoryStore(Path(sys.argv[1]))
conv = store.new_conversation("t")
store.add_user_message(conv.id, "hi")
reply = store.begin_reply(conv.id, "q4", "m.gguf")
store.update_reply(reply, "partial")
store.update_reply(reply, "partial ans")
print(reply, flush=True)
os._exit(9)  # a crash: no finish_reply, no close
"""


def test_crash_while_streaming_becomes_interrupted(db_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _CRASH, str(db_path)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 9, done.stderr
    reply = int(done.stdout)
    store = HistoryStore(db_path)
    msg = store.message(reply)
    assert msg is not None and msg.status == "streaming"
    assert store.mark_interrupted() == 1
    assert store.mark_interrupted() == 0
    msg = store.message(reply)
    assert msg is not None and msg.status == "interrupted" and msg.content == "partial ans"
    assert msg.error
    store.close()


def test_a_live_writer_in_another_process_is_not_interrupted(db_path: Path) -> None:
    with HistoryStore(db_path) as store:
        conv = store.new_conversation("t")
        reply = store.begin_reply(conv.id, "q4", None)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        db = sqlite3.connect(db_path)
        with db:
            db.execute("UPDATE messages SET writer_pid = ? WHERE id = ?", (child.pid, reply))
        db.close()
        with HistoryStore(db_path) as store:
            assert store.mark_interrupted() == 0
    finally:
        child.kill()
        child.wait()
    with HistoryStore(db_path) as store:
        assert store.mark_interrupted() == 1


def test_delete_cascades(db_path: Path) -> None:
    with HistoryStore(db_path) as store:
        a = store.new_conversation("a")
        b = store.new_conversation("b")
        store.add_user_message(a.id, "x")
        store.add_user_message(b.id, "y")
        store.delete(a.id)
        assert [c.id for c in store.list_conversations()] == [b.id]
        assert store.messages(a.id) == []
        assert len(store.messages(b.id)) == 1
    db = sqlite3.connect(db_path)
    assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 1
    db.close()


def test_export_markdown(db_path: Path) -> None:
    with HistoryStore(db_path) as store:
        conv = store.new_conversation("Parsers", system_prompt="You are terse.")
        store.add_user_message(conv.id, "Write `parse()`", profile="q4_k_m")
        reply = store.begin_reply(conv.id, "q4_k_m", "demo-Q4_K_M.gguf")
        store.finish_reply(
            reply,
            "```python\ndef parse(): ...\n```",
            "complete",
            prompt_tokens=12,
            completion_tokens=9,
            ttft_s=0.31,
            prompt_per_second=250.0,
            predicted_per_second=42.5,
            finish_reason="stop",
        )
        cut = store.begin_reply(conv.id, "iq2", None)
        store.finish_reply(cut, "half", "error", error="HTTP 500: boom")
        text = store.export_markdown(conv.id)
    assert text.startswith("# Parsers\n")
    assert "## System prompt\n\nYou are terse." in text
    assert "## User · q4_k_m\n\nWrite `parse()`" in text
    assert "## Assistant · q4_k_m · demo-Q4_K_M.gguf\n\n```python\ndef parse(): ...\n```" in text
    assert "12 prompt tokens" in text and "9 tokens" in text and "first token 0.31 s" in text
    assert (
        "prompt 250.0 tok/s" in text and "generation 42.5 tok/s" in text and "finish stop" in text
    )
    assert "_error · HTTP 500: boom_" in text


def _hammer(path: Path, n: int, errors: list[BaseException]) -> None:
    try:
        with HistoryStore(path) as store:
            conv_id = store.new_conversation("thread").id  # each instance writes its own
            for i in range(n):
                reply = store.begin_reply(conv_id, "t", None)
                store.update_reply(reply, f"thread {i}")
                store.finish_reply(reply, f"thread {i}", "complete")
    except BaseException as exc:
        errors.append(exc)


_CHILD = """
import sys
from pathlib import Path
from coder_tui.core.store.history import HistoryStore
store = HistoryStore(Path(sys.argv[1]))
conv = store.new_conversation("child").id
for i in range(int(sys.argv[2])):
    m = store.begin_reply(conv, "child", None)
    store.update_reply(m, "c")
    store.finish_reply(m, f"child {i}", "complete")
store.close()
"""


def test_concurrent_writers_thread_and_process(db_path: Path) -> None:
    with HistoryStore(db_path) as main:
        conv = main.new_conversation("busy")
        errors: list[BaseException] = []
        thread = threading.Thread(target=_hammer, args=(db_path, 300, errors))
        child = subprocess.Popen([sys.executable, "-c", _CHILD, str(db_path), "150"])
        thread.start()
        deadline = time.monotonic() + 30
        written = 0
        # keep writing until both other writers are done, so all three overlap
        while written < 150 or thread.is_alive() or child.poll() is None:
            main.add_user_message(conv.id, f"main {written}")
            written += 1
            assert time.monotonic() < deadline
        thread.join()
        assert child.wait() == 0
        assert not errors
        expected = 300 + 150 + written
        # Count through a fresh connection too: one that lost its lock on the file may still see
        # its own writes in a WAL another process has already deleted.
        for store in (main, HistoryStore(db_path)):
            msgs = [m for c in store.list_conversations() for m in store.messages(c.id)]
            assert len(msgs) == expected
            assert len(store.messages(conv.id)) == written
            assert {m.status for m in msgs} == {"complete"}
            assert sum(m.content.startswith("child") for m in msgs) == 150
            if store is not main:
                store.close()
    with HistoryStore(db_path) as after:
        assert sum(len(after.messages(c.id)) for c in after.list_conversations()) == expected
    db = sqlite3.connect(db_path)
    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    db.close()


def _count_elsewhere(db_path: Path) -> int:
    """Messages seen by a connection in another process, opened and closed."""
    done = subprocess.run(
        [sys.executable, "-c", _COUNT, str(db_path)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


_COUNT = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print(db.execute("SELECT count(*) FROM messages").fetchone()[0])
db.close()
"""


@pytest.mark.parametrize("keep_second_open", [False, True])
def test_a_second_store_does_not_drop_the_first_ones_lock(
    db_path: Path, keep_second_open: bool
) -> None:
    """Opening a store must not close a descriptor of an existing database file: that drops
    every POSIX lock this process holds on it, so another process closing its connection
    believes it is the last one, checkpoints and deletes the WAL, and this process's next
    writes go to a deleted file, lost without an error."""
    with HistoryStore(db_path) as first:
        conv = first.new_conversation("x")
        second = HistoryStore(db_path)
        if not keep_second_open:
            second.close()
        assert _count_elsewhere(db_path) == 0
        first.add_user_message(conv.id, "kept")
        assert _count_elsewhere(db_path) == 1
        if keep_second_open:
            second.add_user_message(second.new_conversation("y").id, "kept too")
            assert _count_elsewhere(db_path) == 2
            second.close()


def test_opening_the_bench_tables_does_not_drop_the_history_lock(db_path: Path) -> None:
    """The bench screen opens ``BenchStore`` on the same database while the chat's store is open;
    it must not drop the chat's lock either (it did: a prompt saved afterwards was invisible)."""
    from coder_tui.core.bench.store import BenchStore

    with HistoryStore(db_path) as first:
        conv = first.new_conversation("x")
        BenchStore(db_path).close()
        assert _count_elsewhere(db_path) == 0
        first.add_user_message(conv.id, "kept")
        assert _count_elsewhere(db_path) == 1


def test_other_store_sees_writes_immediately(db_path: Path) -> None:
    a = HistoryStore(db_path)
    b = HistoryStore(db_path)
    conv = a.new_conversation("shared")
    reply = a.begin_reply(conv.id, None, None)
    a.update_reply(reply, "so far")
    msg = b.message(reply)
    assert msg is not None and msg.content == "so far"
    a.close()
    b.close()
    assert os.path.exists(db_path)
