"""History faults: a read-only, damaged, locked or full database, and two instances on one history.

Each scenario runs the app (or the store the app opens, ``open_history``) against the fault made
on purpose: a read-only connection (``PRAGMA query_only``: chmod does not stop root), garbage
bytes or overwritten pages, another process holding a write lock, a page cap (SQLite's own
``database or disk is full``), a second process that has a conversation open. Each asserts one
clear line, the chat going on (in memory, marked unsaved), nothing lost, no orphan.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
from pathlib import Path

import pytest

from coder_tui.core.config.loader import Config, Profile, ServerSettings
from coder_tui.core.server.ports import free_port
from coder_tui.core.store.db import UNSAVED_HINT
from coder_tui.core.store.history import HistoryStore, open_history
from coder_tui.ui.app import CoderApp
from coder_tui.ui.screens.main import MainScreen
from coder_tui.ui.widgets.history_note import HistoryNote
from coder_tui.ui.widgets.message import MessageView
from faults.conftest import Env, Fault
from faults.helpers import python, spawn, stop

PROMPT = "explain the bug"
TOKENS = 300
BIG = 6000
"""Tokens of a reply that needs new pages in the file (about 40 KB)."""


def _reply(n: int = TOKENS) -> str:
    return "".join(f"w{i} " for i in range(n))


def _config(env: Env, tokens: int = TOKENS, delay_s: float = 0.01) -> Config:
    profile = Profile(
        name="p",
        model=env.model,
        env={
            "FAKE_MODE": "normal",
            "FAKE_LOAD_S": "0.2",
            "FAKE_TOKENS": str(tokens),
            "FAKE_TOKEN_DELAY_S": str(delay_s),
        },
    )
    server = ServerSettings(binary=env.binary, port=free_port(), ready_timeout_s=10, stop_grace_s=3)
    return Config(path=None, server=server, profiles={"p": profile}, default_profile="p")


def _notices(app: CoderApp) -> list[str]:
    return [n.message for n in app._notifications]


async def _until(check: object, timeout_s: float = 20.0) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if callable(check) and check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out waiting")


async def _send(app: CoderApp, pilot: object, text: str) -> MainScreen:
    main = app.main
    assert main is not None
    await _until(lambda: main.server_ready)
    main.query_one("PromptInput").load_text(text)  # type: ignore[attr-defined]
    await pilot.press("enter")  # type: ignore[attr-defined]
    await _until(lambda: main.generating or main.conversation is not None)
    return main


def _unsaved(why: str) -> str:
    return f"{why}; {UNSAVED_HINT}"


async def test_read_only_history_keeps_the_chat_in_memory(fault: Fault, env: Env) -> None:
    """The first Enter used to crash with a traceback and lose the prompt."""
    HistoryStore(env.db).close()
    store = open_history(env.db)
    store._db.execute("PRAGMA query_only = ON")  # the fault: nothing can be written
    on_disk = env.db.read_bytes()
    app = CoderApp(_config(env, tokens=40), store=store, sample_metrics=False)
    async with app.run_test(size=(100, 30)) as pilot:
        main = await _send(app, pilot, PROMPT)
        await _until(lambda: not main.generating)
        pid = app.manager.pid if app.manager else None
        note = main.query_one(HistoryNote)
        assert main.conversation is not None
        stored = store.messages(main.conversation.id)
        views = list(main.query(MessageView))
        assert [v.role for v in views] == ["user", "assistant"]
        assert "generating" not in str(views[-1].query_one(".stats").render())
        export = store.export_markdown(main.conversation.id)
    store.close()
    expected = _unsaved(f"cannot save chat history to {env.db}: the database is read-only")
    assert str(note.render()) == f"unsaved · {expected}"
    assert expected in _notices(app)
    assert _reply(40) in export
    fault.no_orphans([pid], env.model)
    fault.nothing_lost(stored, prompts=[PROMPT], replies=[_reply(40)], files={env.db: on_disk})
    fault.says(store.trouble, expected)


async def test_disk_full_during_a_reply_is_reported(fault: Fault, env: Env) -> None:
    """The reply used to stay at ``generating…`` forever, its row ``streaming`` with 0 bytes."""
    store = open_history(env.db)
    app = CoderApp(_config(env, tokens=BIG, delay_s=0.0005), store=store, sample_metrics=False)
    async with app.run_test(size=(100, 30)) as pilot:
        main = await _send(app, pilot, PROMPT)
        await _until(lambda: main._renderer is not None and main._renderer.view is not None)
        with store._lock:  # the fault: the disk fills up while the reply streams
            pages = store._db.execute("PRAGMA page_count").fetchone()[0]
            store._db.execute(f"PRAGMA max_page_count = {pages}")
        await _until(lambda: not main.generating)
        await pilot.pause()
        pid = app.manager.pid if app.manager else None
        assert main.conversation is not None
        stored = store.messages(main.conversation.id)
        stats = str(list(main.query(MessageView))[-1].query_one(".stats").render())
        has_note = bool(main.query(HistoryNote))
    store.close()
    expected = _unsaved(f"cannot save chat history to {env.db}: the disk is full")
    assert "generating" not in stats and "complete" in stats
    assert has_note and expected in _notices(app)
    assert stored[-1].status == "complete"
    with HistoryStore(env.db) as on_disk:  # the prompt reached the file before the disk filled
        assert [m.content for m in on_disk.messages(stored[0].conversation_id)][:1] == [PROMPT]
    fault.no_orphans([pid], env.model)
    fault.nothing_lost(stored, prompts=[PROMPT], replies=[_reply(BIG)])
    fault.says(store.trouble, expected)


def _garbage(db: Path) -> tuple[bytes, str]:
    data = b"this is not sqlite \x1b[2J" + os.urandom(8192)
    db.write_bytes(data)
    return data, "file is not a database"


def _malformed(db: Path) -> tuple[bytes, str]:
    with HistoryStore(db) as store:
        conv = store.new_conversation("kept on disk")
        for i in range(200):
            store.add_user_message(conv.id, f"prompt {i} " * 40)
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    data = bytearray(db.read_bytes())
    data[4096:] = os.urandom(len(data) - 4096)  # every page after the schema's
    db.write_bytes(bytes(data))
    return bytes(data), "database disk image is malformed"


@pytest.mark.parametrize("damage", [_garbage, _malformed], ids=["not-a-database", "malformed"])
async def test_damaged_history_is_moved_aside(
    fault: Fault, env: Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, damage: object
) -> None:
    """It used to crash the app at start."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    from coder_tui.core.paths import app_paths

    db = app_paths().history_db
    db.parent.mkdir(parents=True)
    original, reason = damage(db)  # type: ignore[operator]
    app = CoderApp(_config(env, tokens=10), sample_metrics=False)
    async with app.run_test(size=(100, 30)) as pilot:
        main = await _send(app, pilot, PROMPT)
        await _until(lambda: not main.generating)
        pid = app.manager.pid if app.manager else None
        assert app.store is not None and app.store.saving
        notices = _notices(app)
    asides = sorted(db.parent.glob(f"{db.name}.damaged-*"))
    aside = next(p for p in asides if not p.name.endswith(("-wal", "-shm")))
    expected = (
        f"chat history {db} was damaged ({reason}): moved aside to {aside}; started a fresh one"
    )
    assert expected in notices
    with HistoryStore(db) as fresh:  # the new file holds the new chat
        stored = [m for c in fresh.list_conversations() for m in fresh.messages(c.id)]
    fault.no_orphans([pid], env.model)
    fault.nothing_lost(stored, prompts=[PROMPT], replies=[_reply(10)], files={aside: original})
    fault.says(next(n for n in notices if "damaged" in n), expected)


LOCKER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
db.execute("CREATE TABLE IF NOT EXISTS other_app (x)")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
"""


def test_locked_history_goes_on_in_memory(fault: Fault, env: Env) -> None:
    """Another process keeps the write lock past the busy timeout: the reply is kept, in
    memory, and can be exported; the lock holder's own work is untouched."""
    store = open_history(env.db, busy_timeout_s=0.3)
    conv = store.new_conversation()
    store.add_user_message(conv.id, PROMPT)
    msg_id = store.begin_reply(conv.id, "p", "model.gguf")
    locker, lines = spawn(python("-c", LOCKER, str(env.db), "30"))
    told: list[str] = []
    store.on_trouble = told.append
    try:
        lines.wait("locked", 10)
        store.update_reply(msg_id, _reply()[:100])
        store.finish_reply(msg_id, _reply(), "complete")
        stored = store.messages(conv.id)
        export = store.export_markdown(conv.id)
    finally:
        stop(locker)
        store.close()
    expected = _unsaved(
        f"cannot save chat history to {env.db}: the database is locked by another process "
        "(waited 0.3 s)"
    )
    assert told == [expected] and _reply() in export
    fault.no_orphans([locker.pid])
    fault.nothing_lost(stored, prompts=[PROMPT], replies=[_reply()])
    fault.says(store.trouble, expected)


def test_unusable_history_opens_in_memory(fault: Fault, tmp_path: Path) -> None:
    """A history path that cannot be a file (a folder is in the way): the chat still opens."""
    db = tmp_path / "history.sqlite3"
    db.mkdir()
    store = open_history(db)
    conv = store.new_conversation()
    store.add_user_message(conv.id, PROMPT)
    stored = store.messages(conv.id)
    store.close()
    assert not store.saving and db.is_dir()
    fault.no_orphans([])
    fault.nothing_lost(stored, prompts=[PROMPT])
    assert store.trouble is not None
    fault.says(store.trouble.split(": ")[0], f"cannot open chat history {db}")


OWNER = """
import sys, time
from pathlib import Path
from coder_tui.core.store.history import HistoryStore
store = HistoryStore(Path(sys.argv[1]))
conv = store.new_conversation("A's chat")
store.add_user_message(conv.id, "A's prompt")
print("open", conv.id, flush=True)
time.sleep(60)
"""


async def test_two_instances_never_share_an_open_conversation(fault: Fault, env: Env) -> None:
    """Instance B used to append its turn into A's open conversation while A streamed."""
    owner, lines = spawn(python("-c", OWNER, str(env.db)))
    try:
        a_conv = int(lines.wait("open", 20).split()[1])
        store = open_history(env.db)
        app = CoderApp(_config(env, tokens=10), store=store, sample_metrics=False)
        async with app.run_test(size=(100, 30)) as pilot:
            main = app.main
            assert main is not None and main.conversation is None  # not A's
            main = await _send(app, pilot, PROMPT)
            await _until(lambda: not main.generating)
            pid = app.manager.pid if app.manager else None
            assert main.conversation is not None and main.conversation.id != a_conv
            b_conv = main.conversation.id
            notices = _notices(app)
        with HistoryStore(env.db) as check:
            a_msgs = check.messages(a_conv)
            b_msgs = check.messages(b_conv)
        store.close()
    finally:
        stop(owner)
    expected = (
        f'"A\'s chat" is open in another coder-tui (pid {owner.pid}): starting a new conversation'
    )
    assert expected in notices
    assert [m.content for m in a_msgs] == ["A's prompt"]
    fault.no_orphans([pid, owner.pid], env.model)
    fault.nothing_lost(b_msgs, prompts=[PROMPT], replies=[_reply(10)])
    fault.says(next(n for n in notices if "another coder-tui" in n), expected)


async def test_unsaved_chat_is_exported_where_it_can_be(
    fault: Fault, env: Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The history cannot be written and neither can the exports folder: Ctrl+L, e still puts
    the chat (prompt and reply, both only in memory) in a file, and says where."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    from coder_tui.core.paths import app_paths

    app_paths().data_dir.mkdir(parents=True)
    (app_paths().data_dir / "exports").write_text("a file where the folder should be")
    store = open_history(env.db)
    store._db.execute("PRAGMA query_only = ON")  # the fault: the history is read-only
    conv = store.new_conversation("unsaved chat")
    store.add_user_message(conv.id, PROMPT)
    reply = store.begin_reply(conv.id, "p", "m")
    store.finish_reply(reply, _reply(), "complete")
    app = CoderApp(_config(env), store=store, autostart=False, sample_metrics=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+l")
        await pilot.pause()
        await pilot.press("e")
        await pilot.pause()
        notices = _notices(app)
    stored = store.messages(conv.id)
    store.close()
    exported = tmp_path / "tmp" / f"{conv.id}-unsaved-chat.md"
    expected = (
        f"cannot export to {app_paths().data_dir / 'exports' / exported.name} (File exists); "
        f"exported to {exported}"
    )
    fault.no_orphans([])
    fault.nothing_lost(stored, prompts=[PROMPT], replies=[_reply()], kept={exported: _reply()})
    fault.says(next((n for n in notices if "exported to" in n), None), expected)
