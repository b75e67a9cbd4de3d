"""Saving messages as they happen: the prompt before it is sent, the reply while it streams.

Owns every write of a message: ``add_user_message``, ``begin_reply``, ``update_reply`` (the whole
text so far; the caller decides how often, about once a second), ``finish_reply`` (final text,
status and numbers) and ``mark_interrupted`` (at start, a reply left ``streaming`` by a crash or
kill becomes ``interrupted``, its partial text kept). A reply whose write failed is kept in
memory (``unsaved``) and written again by ``flush`` or by the next write of the same reply, so
the caller loses nothing by carrying on (a degrading store goes on in memory instead,
``db.py``). A write into a conversation that another coder-tui has open is refused with
``ConversationTaken`` (owners are ``turns.py``'s). The connection and transactions are
``db.py``'s; conversations and reading messages back are ``history.py``'s.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import time
from pathlib import Path
from typing import cast

from coder_tui.core.store.db import HistoryWriteError
from coder_tui.core.store.owners import Owners
from coder_tui.core.store.schema import INTERRUPTED_NOTE, MessageStatus, Role, StoredMessage


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_finish(call: functools.partial[None]) -> bool:
    return getattr(call.func, "__name__", "") == "_finish"


class MessageWrites(Owners):
    """The message writes of a ``HistoryStore`` (its base: one connection, one lock, owners)."""

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout_s: float = 5.0,
        degrade: bool = False,
        memory: bool = False,
    ) -> None:
        self._unsaved: dict[int, functools.partial[None]] = {}
        super().__init__(path, busy_timeout_s=busy_timeout_s, degrade=degrade, memory=memory)

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

    # -- writes -----------------------------------------------------------------------------------

    def _insert(
        self,
        conv_id: int,
        role: Role,
        content: str,
        status: MessageStatus,
        profile: str | None,
        model: str | None,
        quant: str | None = None,
        replacing: int | None = None,
        identity: str | None = None,
    ) -> StoredMessage:
        now = time.time()

        def insert(db: sqlite3.Connection) -> int:
            self._check_owner(db, conv_id)
            cur = db.execute(
                "INSERT INTO messages (conversation_id, role, content, status, profile, model, "
                "created_at, updated_at, writer_pid, quant, profile_identity) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    conv_id,
                    role,
                    content,
                    status,
                    profile,
                    model,
                    now,
                    now,
                    os.getpid(),
                    quant,
                    identity,
                ),
            )
            msg_id = cast(int, cur.lastrowid)
            slot = msg_id
            if replacing is not None:  # a new answer in the slot of the reply it replaces
                row = db.execute(
                    "SELECT slot FROM messages WHERE id = ? AND conversation_id = ?",
                    (replacing, conv_id),
                ).fetchone()
                if row is not None:
                    slot = int(row[0])
                    db.execute("UPDATE messages SET active = 0 WHERE slot = ?", (slot,))
            db.execute("UPDATE messages SET slot = ?, active = 1 WHERE id = ?", (slot, msg_id))
            db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conv_id))
            if role == "user":
                title = content.strip().splitlines()[0][:60] if content.strip() else ""
                db.execute(
                    "UPDATE conversations SET title = ? WHERE id = ? AND title = ''",
                    (title, conv_id),
                )
            return msg_id

        msg_id = self._transact(insert)
        return StoredMessage(
            msg_id,
            conv_id,
            role,
            content,
            status,
            profile,
            model,
            now,
            now,
            quant=quant,
            profile_identity=identity,
        )

    def add_user_message(
        self, conv_id: int, text: str, profile: str | None = None
    ) -> StoredMessage:
        """Save the prompt; call it before sending the request."""
        return self._insert(conv_id, "user", text, "complete", profile, None)

    def begin_reply(
        self,
        conv_id: int,
        profile: str | None,
        model: str | None,
        *,
        quant: str | None = None,
        replacing: int | None = None,
        identity: str | None = None,
    ) -> int:
        """An empty assistant reply with status ``streaming``; returns its id. ``replacing``: the
        id of a reply this one answers again (that one is kept, as an alternative); ``identity``:
        the serving profile's (``core/config/identity.py``), which its speed is kept under."""
        return self._insert(
            conv_id, "assistant", "", "streaming", profile, model, quant, replacing, identity
        ).id

    def update_reply(self, msg_id: int, content: str) -> None:
        """Save the reply's text so far (the whole text, not a delta).

        On ``HistoryWriteError`` the text is kept for ``flush``."""
        self._keeping(msg_id, functools.partial(self._update, msg_id, content))

    def _update(self, msg_id: int, content: str) -> None:
        self._transact(
            lambda db: db.execute(
                "UPDATE messages SET content = ?, updated_at = ? WHERE id = ?",
                (content, time.time(), msg_id),
            )
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

        def finish(db: sqlite3.Connection) -> None:
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

        self._transact(finish)

    def mark_interrupted(self) -> int:
        """At startup: replies still ``streaming`` whose writer is gone become ``interrupted``
        (their partial text kept); returns how many. A reply another running coder-tui is
        streaming right now is left alone; one written under this process's own id is from an
        earlier process that had the same id (containers reuse ids), so it is marked too."""
        me = os.getpid()

        def mark(db: sqlite3.Connection) -> int:
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

        return self._transact(mark)
