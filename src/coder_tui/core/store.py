"""Chat history in SQLite: conversations and messages, saved as they happen, never lost.

Owns the database file (``app_paths().history_db``), its schema and forward migrations, and every
read and write of history. The prompt is saved before it is sent, a reply is saved while it streams
(``update_reply``; the caller decides how often, about once a second) and finished with its status
and numbers. A reply left ``streaming`` by a crash or kill becomes ``interrupted`` at the next
start (``mark_interrupted``), its partial text kept. What to show and when is the UI's business;
text is stored as the chat client yielded it (already sanitised).

Many writers: WAL mode, a 5 s busy timeout, and every write in ``BEGIN IMMEDIATE`` (a deferred
transaction that reads and then writes can fail at once with "database is locked" in WAL mode
instead of waiting). One connection per ``HistoryStore``, serialised by a lock, so the store may be
used from worker threads. Values out are frozen dataclasses, never live rows. Times are Unix
seconds.

A write that fails (disk full, the database locked by another process past the busy timeout)
raises ``HistoryWriteError``: one line saying why, for the UI to show. A reply whose text could
not be saved is kept in memory (``unsaved``) and written again by ``flush`` or by the next write
of the same reply, so the caller loses nothing by carrying on.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

from coder_tui.core.errors import UserError
from coder_tui.core.store_export import conversation_markdown
from coder_tui.core.store_export import stats_line as stats_line  # re-exported for the UI
from coder_tui.core.store_schema import (
    INTERRUPTED_NOTE,
    MIGRATIONS,
    SCHEMA_VERSION,
    Conversation,
    MessageStatus,
    Role,
    StoredMessage,
    status_for_end,
)

__all__ = [
    "SCHEMA_VERSION",
    "Conversation",
    "HistoryStore",
    "HistoryWriteError",
    "MessageStatus",
    "Role",
    "StoredMessage",
    "status_for_end",
]

_MSG_COLUMNS = (
    "id, conversation_id, role, content, status, profile, model, created_at, updated_at, "
    "prompt_tokens, completion_tokens, ttft_s, prompt_per_second, predicted_per_second, "
    "finish_reason, error"
)


def _mkdirs(path: Path) -> None:
    """Create ``path`` and missing parents, each 0700 (history is private)."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class HistoryWriteError(UserError, sqlite3.OperationalError):
    """A write to the history database failed; ``str()`` is one line naming the file and why.

    Still a ``sqlite3.OperationalError``, so code that caught that before keeps working."""


def _why(exc: BaseException, busy_timeout_s: float) -> str:
    text = str(exc).lower()
    if "full" in text or getattr(exc, "errno", None) == errno.ENOSPC:
        return "the disk is full"
    if "locked" in text or "busy" in text:
        return f"the database is locked by another process (waited {busy_timeout_s:g} s)"
    if "readonly" in text or "read-only" in text:
        return "the database is read-only"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _is_finish(call: functools.partial[None]) -> bool:
    return getattr(call.func, "__name__", "") == "_finish"


class HistoryStore:
    """The history database at ``path``, created (0600, folders 0700) and migrated on open."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 5.0) -> None:
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        self._unsaved: dict[int, functools.partial[None]] = {}
        _mkdirs(path.parent)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        with contextlib.suppress(OSError):
            os.chmod(path, 0o600)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000):d}")
            self._db.execute("PRAGMA journal_mode = WAL")
            # In WAL mode NORMAL still survives a crash or kill of coder-tui; only a power cut
            # can lose the last commits. FULL would fsync every streamed update.
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema ---------------------------------------------------------------------------------

    def _version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _refuse_newer(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise UserError(
                f"{self.path.name}: schema version {version} is newer than this coder-tui "
                f"understands ({SCHEMA_VERSION}); upgrade coder-tui"
            )

    def _migrate(self) -> None:
        version = self._version()
        self._refuse_newer(version)
        if version == SCHEMA_VERSION:
            return
        if version > 0:
            self._backup(version)
        with self._write():
            version = self._version()  # another process may have migrated meanwhile
            self._refuse_newer(version)
            for migrate in MIGRATIONS[version:]:
                migrate(self._db)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")

    def _backup(self, version: int) -> None:
        """A copy of the database as it was before migrating from ``version`` (sqlite's backup
        API, consistent even while another process writes)."""
        target = self.path.with_name(f"{self.path.name}.v{version}.bak")
        fd = os.open(target, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        dest = sqlite3.connect(target)
        try:
            self._db.backup(dest)
        finally:
            dest.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except (sqlite3.OperationalError, OSError) as exc:
                raise self._write_error(exc) from None
            try:
                yield self._db
            except (sqlite3.OperationalError, OSError) as exc:
                self._rollback()
                raise self._write_error(exc) from None
            except BaseException:
                self._rollback()
                raise
            try:
                self._db.execute("COMMIT")
            except (sqlite3.OperationalError, OSError) as exc:
                self._rollback()
                raise self._write_error(exc) from None

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # a failed COMMIT may have ended it already
            self._db.execute("ROLLBACK")

    def _write_error(self, exc: BaseException) -> HistoryWriteError:
        if isinstance(exc, HistoryWriteError):
            return exc
        why = _why(exc, self.busy_timeout_s)
        return HistoryWriteError(f"cannot save chat history to {self.path}: {why}")

    # -- unsaved replies --------------------------------------------------------------------------

    @property
    def unsaved(self) -> tuple[int, ...]:
        """Ids of replies whose latest text is only in memory (a write failed)."""
        return tuple(self._unsaved)

    def flush(self) -> bool:
        """Write again every reply whose last write failed; True when nothing is left unsaved.

        Raises ``HistoryWriteError`` if it still fails (the text stays kept)."""
        for msg_id, call in list(self._unsaved.items()):
            self._keeping(msg_id, call)
        return not self._unsaved

    def _keeping(self, msg_id: int, call: functools.partial[None]) -> None:
        """Run a reply write; if it fails, keep it for ``flush`` and re-raise. A kept finish is
        never replaced by a kept update (the finish is final); otherwise the newest call wins,
        since every write carries the whole text."""
        pending = self._unsaved.get(msg_id)
        try:
            call()
        except HistoryWriteError:
            if pending is None or not _is_finish(pending) or _is_finish(call):
                self._unsaved[msg_id] = call
            raise
        if pending is not None and (_is_finish(call) or not _is_finish(pending)):
            self._unsaved.pop(msg_id, None)

    def _read(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    # -- conversations --------------------------------------------------------------------------

    def new_conversation(
        self, title: str | None = None, system_prompt: str | None = None
    ) -> Conversation:
        """A new, empty conversation. Without a title, the first prompt's first line names it."""
        now = time.time()
        with self._write() as db:
            cur = db.execute(
                "INSERT INTO conversations (title, system_prompt, created_at, updated_at) "
                "VALUES (?, ?, ?, ?)",
                (title or "", system_prompt, now, now),
            )
        return Conversation(cast(int, cur.lastrowid), title or "", now, now, system_prompt)

    def conversation(self, conv_id: int) -> Conversation | None:
        rows = self._read(
            "SELECT id, title, created_at, updated_at, system_prompt FROM conversations "
            "WHERE id = ?",
            (conv_id,),
        )
        return Conversation(*rows[0]) if rows else None  # type: ignore[arg-type]

    def list_conversations(self) -> list[Conversation]:
        """Every conversation, the most recently active first."""
        rows = self._read(
            "SELECT id, title, created_at, updated_at, system_prompt FROM conversations "
            "ORDER BY updated_at DESC, id DESC"
        )
        return [Conversation(*row) for row in rows]  # type: ignore[arg-type]

    def last_conversation(self) -> Conversation | None:
        conversations = self._read(
            "SELECT id, title, created_at, updated_at, system_prompt FROM conversations "
            "ORDER BY updated_at DESC, id DESC LIMIT 1"
        )
        return Conversation(*conversations[0]) if conversations else None  # type: ignore[arg-type]

    def rename(self, conv_id: int, title: str) -> None:
        with self._write() as db:
            db.execute("UPDATE conversations SET title = ? WHERE id = ?", (title, conv_id))

    def set_system_prompt(self, conv_id: int, system_prompt: str | None) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE conversations SET system_prompt = ? WHERE id = ?", (system_prompt, conv_id)
            )

    def delete(self, conv_id: int) -> None:
        """Delete a conversation and (cascade) its messages."""
        with self._write() as db:
            db.execute("DELETE FROM conversations WHERE id = ?", (conv_id,))

    # -- messages -------------------------------------------------------------------------------

    def messages(self, conv_id: int) -> list[StoredMessage]:
        rows = self._read(
            f"SELECT {_MSG_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY id",  # noqa: S608 (constant columns)
            (conv_id,),
        )
        return [StoredMessage(*row) for row in rows]  # type: ignore[arg-type]

    def last_speed(self, profile: str) -> float | None:
        """Generation tokens/s of the newest finished reply from ``profile`` (picker, compare)."""
        rows = self._read(
            "SELECT predicted_per_second FROM messages WHERE profile = ? AND role = 'assistant' "
            "AND predicted_per_second IS NOT NULL ORDER BY id DESC LIMIT 1",
            (profile,),
        )
        return float(rows[0][0]) if rows else None  # type: ignore[arg-type]

    def message(self, msg_id: int) -> StoredMessage | None:
        sql = f"SELECT {_MSG_COLUMNS} FROM messages WHERE id = ?"  # noqa: S608 (constant columns)
        rows = self._read(sql, (msg_id,))
        return StoredMessage(*rows[0]) if rows else None  # type: ignore[arg-type]

    def _insert(
        self,
        conv_id: int,
        role: Role,
        content: str,
        status: MessageStatus,
        profile: str | None,
        model: str | None,
    ) -> StoredMessage:
        now = time.time()
        with self._write() as db:
            cur = db.execute(
                "INSERT INTO messages (conversation_id, role, content, status, profile, model, "
                "created_at, updated_at, writer_pid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (conv_id, role, content, status, profile, model, now, now, os.getpid()),
            )
            db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conv_id))
            if role == "user":
                title = content.strip().splitlines()[0][:60] if content.strip() else ""
                db.execute(
                    "UPDATE conversations SET title = ? WHERE id = ? AND title = ''",
                    (title, conv_id),
                )
        msg_id = cast(int, cur.lastrowid)
        return StoredMessage(msg_id, conv_id, role, content, status, profile, model, now, now)

    def add_user_message(
        self, conv_id: int, text: str, profile: str | None = None
    ) -> StoredMessage:
        """Save the prompt; call it before sending the request."""
        return self._insert(conv_id, "user", text, "complete", profile, None)

    def begin_reply(self, conv_id: int, profile: str | None, model: str | None) -> int:
        """An empty assistant reply with status ``streaming``; returns its id."""
        return self._insert(conv_id, "assistant", "", "streaming", profile, model).id

    def update_reply(self, msg_id: int, content: str) -> None:
        """Save the reply's text so far (the whole text, not a delta).

        On ``HistoryWriteError`` the text is kept for ``flush``."""
        self._keeping(msg_id, functools.partial(self._update, msg_id, content))

    def _update(self, msg_id: int, content: str) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE messages SET content = ?, updated_at = ? WHERE id = ?",
                (content, time.time(), msg_id),
            )

    def finish_reply(
        self,
        msg_id: int,
        content: str,
        status: MessageStatus,
        *,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        ttft_s: float | None = None,
        prompt_per_second: float | None = None,
        predicted_per_second: float | None = None,
        finish_reason: str | None = None,
        error: str | None = None,
    ) -> None:
        """Save the reply's final text, its status and its numbers.

        On ``HistoryWriteError`` all of it is kept for ``flush``."""
        self._keeping(
            msg_id,
            functools.partial(
                self._finish,
                msg_id,
                content,
                status,
                prompt_tokens,
                completion_tokens,
                ttft_s,
                prompt_per_second,
                predicted_per_second,
                finish_reason,
                error,
            ),
        )

    def _finish(
        self,
        msg_id: int,
        content: str,
        status: MessageStatus,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        ttft_s: float | None,
        prompt_per_second: float | None,
        predicted_per_second: float | None,
        finish_reason: str | None,
        error: str | None,
    ) -> None:
        now = time.time()
        with self._write() as db:
            db.execute(
                "UPDATE messages SET content = ?, status = ?, updated_at = ?, prompt_tokens = ?, "
                "completion_tokens = ?, ttft_s = ?, prompt_per_second = ?, "
                "predicted_per_second = ?, finish_reason = ?, error = ? WHERE id = ?",
                (
                    content,
                    status,
                    now,
                    prompt_tokens,
                    completion_tokens,
                    ttft_s,
                    prompt_per_second,
                    predicted_per_second,
                    finish_reason,
                    error,
                    msg_id,
                ),
            )
            db.execute(
                "UPDATE conversations SET updated_at = ? WHERE id = "
                "(SELECT conversation_id FROM messages WHERE id = ?)",
                (now, msg_id),
            )

    def mark_interrupted(self) -> int:
        """At startup: replies still ``streaming`` whose writer is gone become ``interrupted``
        (their partial text kept); returns how many. A reply another running coder-tui is
        streaming right now is left alone; one written under this process's own id is from an
        earlier process that had the same id (containers reuse ids), so it is marked too."""
        me = os.getpid()
        with self._write() as db:
            rows = db.execute(
                "SELECT id, writer_pid FROM messages WHERE status = 'streaming'"
            ).fetchall()
            stale = [
                (msg_id,)
                for msg_id, pid in rows
                if pid is None or pid == me or not _pid_alive(int(pid))
            ]
            db.executemany(
                "UPDATE messages SET status = 'interrupted', error = COALESCE(error, ?) "
                "WHERE id = ? AND status = 'streaming'",
                [(INTERRUPTED_NOTE, msg_id) for (msg_id,) in stale],
            )
        return len(stale)

    # -- export ---------------------------------------------------------------------------------

    def export_markdown(self, conv_id: int) -> str:
        """The conversation as Markdown (``store_export.conversation_markdown``)."""
        conv = self.conversation(conv_id)
        if conv is None:
            raise KeyError(conv_id)
        return conversation_markdown(conv, self.messages(conv_id))
