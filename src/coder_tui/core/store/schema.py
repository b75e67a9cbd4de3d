"""The history database's schema: the values read out of it, the stored statuses and the migrations.

Owns what the tables look like and how an older file is brought forward (``MIGRATIONS``: entry i
takes version i to i + 1; append, never edit). Opening, locking and running them are
``store_db.py``'s; every query is ``store.py``'s or ``store_messages.py``'s.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeAlias

Role: TypeAlias = Literal["user", "assistant", "system"]
MessageStatus: TypeAlias = Literal["streaming", "complete", "cancelled", "error", "interrupted"]
INTERRUPTED_NOTE = "coder-tui stopped before the reply finished"

# How each ``StreamEnd.status`` of ``core/client.py`` is stored. A connection lost mid-reply (the
# server killed or gone) is ``interrupted`` like a crash of coder-tui: the text is a fragment.
_END_STATUS: dict[str, MessageStatus] = {
    "done": "complete",
    "cancelled": "cancelled",
    "connection_lost": "interrupted",
    "server_error": "error",
    "timed_out": "error",
    "bad_stream": "error",
}


def status_for_end(end_status: str) -> MessageStatus:
    """The stored status for a chat stream's end status (unknown ones are ``error``)."""
    return _END_STATUS.get(end_status, "error")


@dataclass(frozen=True)
class Conversation:
    id: int
    title: str
    created_at: float
    updated_at: float
    system_prompt: str | None = None


@dataclass(frozen=True)
class StoredMessage:
    """One message; the numbers are set on finished assistant replies, ``None`` elsewhere."""

    id: int
    conversation_id: int
    role: Role
    content: str
    status: MessageStatus
    profile: str | None
    model: str | None
    created_at: float
    updated_at: float
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_s: float | None = None
    prompt_per_second: float | None = None
    predicted_per_second: float | None = None
    finish_reason: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class DecodeRun:
    """How one reply decoded (a row of ``decode_runs``): the server's tokens/s, whether no CPU
    core was idle, and whether it was quiet (asked whole, ``core/chat/reply_mode.py``)."""

    tokens_per_second: float
    cpu_saturated: bool
    quiet: bool = False


def decode_key(profile: str | None, model: str | None) -> str:
    """A ``decode_runs`` row's key: the profile (an attached server's address instead) and the
    model."""
    return f"{profile or ''}\n{model or ''}"


def _v1(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            title TEXT NOT NULL DEFAULT '',
            system_prompt TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL)"""
    )
    db.execute(
        """CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
            content TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL
                CHECK (status IN ('streaming', 'complete', 'cancelled', 'error', 'interrupted')),
            profile TEXT,
            model TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            ttft_s REAL,
            prompt_per_second REAL,
            predicted_per_second REAL,
            finish_reason TEXT,
            error TEXT,
            writer_pid INTEGER)"""
    )
    db.execute("CREATE INDEX messages_by_conversation ON messages (conversation_id, id)")
    db.execute("CREATE INDEX messages_by_status ON messages (status)")
    db.execute("CREATE INDEX conversations_by_update ON conversations (updated_at)")


def _v2(db: sqlite3.Connection) -> None:
    """How the newest reply of each profile and model decoded (``core/decode_memory.py``)."""
    db.execute(
        """CREATE TABLE decode_runs (
            key TEXT PRIMARY KEY,
            at REAL NOT NULL,
            tokens_per_second REAL NOT NULL,
            cpu_saturated INTEGER NOT NULL,
            quiet INTEGER NOT NULL)"""
    )


# Forward migrations: entry i takes the schema from version i to i + 1. Append, never edit.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_v1, _v2)
SCHEMA_VERSION = len(MIGRATIONS)
