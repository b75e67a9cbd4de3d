"""Who has a conversation open: one coder-tui instance at a time writes into a conversation.

Owns the ``owner_*`` columns of ``conversations``: ``claim`` (open a conversation here, unless a
live instance has it), ``release`` (also on ``close``), and ``_check_owner``, which every write of
a message runs inside its transaction (``messages.py``, ``turns.py``), so two instances on the
same history never write into each other's open conversation. An owner is a process id with its
start time (a pid reused after a restart, as in a container, is not mistaken for the old owner)
and a token of this store (two stores in one process are two owners). The connection is ``db.py``'s.
"""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from pathlib import Path

import psutil

from coder_tui.core.errors import UserError
from coder_tui.core.store.db import HistoryDatabase
from coder_tui.core.store.schema import Owner


class ConversationTaken(UserError):
    """The conversation is open in another running coder-tui; ``str()`` is one line."""

    def __init__(self, conv_id: int, owner: Owner) -> None:
        super().__init__(
            f"conversation {conv_id} is open in another coder-tui (pid {owner.pid}); "
            "it was not changed here"
        )
        self.conv_id = conv_id
        self.owner = owner


def _started(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError):
        return None


def _alive(pid: int, started: float | None) -> bool:
    now = _started(pid)
    return now is not None and (started is None or abs(now - started) < 0.5)


class Owners(HistoryDatabase):
    """Conversation owners of a ``HistoryStore`` (its base: one connection, one lock)."""

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout_s: float = 5.0,
        degrade: bool = False,
        memory: bool = False,
    ) -> None:
        self._pid = psutil.Process().pid
        self._started = _started(self._pid) or 0.0
        self._token = uuid.uuid4().hex
        super().__init__(path, busy_timeout_s=busy_timeout_s, degrade=degrade, memory=memory)

    def _other_owner(self, db: sqlite3.Connection, conv_id: int) -> Owner | None:
        row = db.execute(
            "SELECT owner_pid, owner_started, owner_token FROM conversations WHERE id = ?",
            (conv_id,),
        ).fetchone()
        if row is None or row[0] is None or row[2] == self._token:
            return None
        pid, started = int(row[0]), None if row[1] is None else float(row[1])
        return Owner(pid, started or 0.0) if _alive(pid, started) else None

    def _check_owner(self, db: sqlite3.Connection, conv_id: int) -> None:
        """Inside a write: refuse if another live instance has ``conv_id`` open, else take it."""
        owner = self._other_owner(db, conv_id)
        if owner is not None:
            raise ConversationTaken(conv_id, owner)
        self._take(db, conv_id)

    def _take(self, db: sqlite3.Connection, conv_id: int) -> None:
        db.execute(
            "UPDATE conversations SET owner_pid = NULL, owner_started = NULL, owner_token = NULL "
            "WHERE owner_token = ? AND id != ?",
            (self._token, conv_id),
        )
        db.execute(
            "UPDATE conversations SET owner_pid = ?, owner_started = ?, owner_token = ? "
            "WHERE id = ?",
            (self._pid, self._started, self._token, conv_id),
        )

    def claim(self, conv_id: int) -> Owner | None:
        """Open ``conv_id`` here (letting go of the one open before): ``None`` when done, else
        the live instance that has it open (nothing changes)."""

        def claim(db: sqlite3.Connection) -> Owner | None:
            owner = self._other_owner(db, conv_id)
            if owner is None:
                self._take(db, conv_id)
            return owner

        return self._transact(claim)

    def close(self) -> None:
        """Let go of the open conversation (if the file can be written now), then close."""
        with contextlib.suppress(sqlite3.Error), self._lock, self._write() as db:
            db.execute(
                "UPDATE conversations SET owner_pid = NULL, owner_started = NULL, "
                "owner_token = NULL WHERE owner_token = ?",
                (self._token,),
            )
        super().close()

    def release(self) -> None:
        """Let go of the conversation open here (on close, or before starting a new one)."""
        self._transact(
            lambda db: db.execute(
                "UPDATE conversations SET owner_pid = NULL, owner_started = NULL, "
                "owner_token = NULL WHERE owner_token = ?",
                (self._token,),
            )
        )
