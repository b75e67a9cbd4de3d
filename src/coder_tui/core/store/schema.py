"""The history database's schema: the values read out of it, the stored statuses and the migrations.

Owns what the tables look like and how an older file is brought forward (``MIGRATIONS``: entry i
takes version i to i + 1; append, never edit). Opening, locking and running them are
``db.py``'s; every query is ``history.py``'s, ``messages.py``'s, ``turns.py``'s or ``search.py``'s.
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
    """A conversation and its own settings (``None``: the ``[chat]`` config's value is used)."""

    id: int
    title: str
    created_at: float
    updated_at: float
    system_prompt: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class ConversationSettings:
    """What a conversation asks the model with; ``None``: the ``[chat]`` config's value."""

    system_prompt: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None


def settings_of(conv: Conversation) -> ConversationSettings:
    return ConversationSettings(conv.system_prompt, conv.temperature, conv.top_p, conv.max_tokens)


@dataclass(frozen=True)
class Owner:
    """The coder-tui instance that has a conversation open (``pid``, started at ``started``)."""

    pid: int
    started: float


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
    quant: str | None = None
    """The quant type of the model that wrote a reply (from its file name)."""
    alternative: int = 1
    """Which of its answers this reply is (1-based, in the order they were made) ..."""
    alternatives: int = 1
    """... of how many (a regenerated reply keeps the earlier ones as alternatives)."""
    profile_identity: str | None = None
    """The digest of the model file and flags that served a reply (``core/config/identity.py``);
    ``None`` for prompts, an attached server's replies and replies stored before it was kept."""


@dataclass(frozen=True)
class DecodeRun:
    """How one reply decoded (a row of ``decode_runs``): the server's tokens/s, whether no CPU
    core was idle, and whether it was quiet (asked whole, ``core/chat/reply_mode.py``)."""

    tokens_per_second: float
    cpu_saturated: bool
    quiet: bool = False


@dataclass(frozen=True)
class DecodeOwner:
    """Whose decode run a ``decode_runs`` row is: a profile by its identity
    (``core/config/identity.py``: its model file and flags, never its name: another config's
    profile of the same name is another owner), or with no profile (an attached server) that
    server, by its address."""

    identity: str | None
    server: str

    @property
    def key(self) -> str:
        """The row's key (older rows, keyed by profile name and model, never equal one)."""
        return f"profile {self.identity}" if self.identity is not None else f"server {self.server}"


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


def _v3(db: sqlite3.Connection) -> None:
    """Per-conversation settings and owner, a reply's quant and alternatives, full-text search.

    ``slot``: the position of a message (its own id; a regenerated reply takes the slot of the
    one it answers again); ``active``: the alternative shown and sent (one per slot). The FTS5
    tables keep their own copy of each message's first 100,000 characters (a 12 MB reply indexed
    whole took 1.4 s to store and far longer to search, for words that are mostly code), indexed
    when a message stops streaming (not every second)."""
    for column in ("temperature REAL", "top_p REAL", "max_tokens INTEGER"):
        db.execute(f"ALTER TABLE conversations ADD COLUMN {column}")
    for column in ("owner_pid INTEGER", "owner_started REAL", "owner_token TEXT"):
        db.execute(f"ALTER TABLE conversations ADD COLUMN {column}")
    db.execute("ALTER TABLE messages ADD COLUMN quant TEXT")
    db.execute("ALTER TABLE messages ADD COLUMN slot INTEGER")
    db.execute("ALTER TABLE messages ADD COLUMN active INTEGER NOT NULL DEFAULT 1")
    db.execute("UPDATE messages SET slot = id")
    db.execute("CREATE INDEX messages_by_slot ON messages (slot)")
    db.execute("CREATE VIRTUAL TABLE messages_fts USING fts5(content)")
    db.execute("CREATE VIRTUAL TABLE titles_fts USING fts5(title)")
    db.execute(
        "INSERT INTO messages_fts (rowid, content) "
        "SELECT id, substr(content, 1, 100000) FROM messages WHERE status != 'streaming'"
    )
    db.execute("INSERT INTO titles_fts (rowid, title) SELECT id, title FROM conversations")
    db.execute(
        """CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
        WHEN new.status != 'streaming' BEGIN
            INSERT INTO messages_fts (rowid, content)
            VALUES (new.id, substr(new.content, 1, 100000)); END"""
    )
    db.execute(
        """CREATE TRIGGER messages_fts_update AFTER UPDATE OF content, status ON messages
        WHEN new.status != 'streaming' BEGIN
            DELETE FROM messages_fts WHERE rowid = old.id;
            INSERT INTO messages_fts (rowid, content)
            VALUES (new.id, substr(new.content, 1, 100000)); END"""
    )
    db.execute(
        """CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
            DELETE FROM messages_fts WHERE rowid = old.id; END"""
    )
    db.execute(
        """CREATE TRIGGER titles_fts_insert AFTER INSERT ON conversations BEGIN
            INSERT INTO titles_fts (rowid, title) VALUES (new.id, new.title); END"""
    )
    db.execute(
        """CREATE TRIGGER titles_fts_update AFTER UPDATE OF title ON conversations BEGIN
            DELETE FROM titles_fts WHERE rowid = old.id;
            INSERT INTO titles_fts (rowid, title) VALUES (new.id, new.title); END"""
    )
    db.execute(
        """CREATE TRIGGER titles_fts_delete AFTER DELETE ON conversations BEGIN
            DELETE FROM titles_fts WHERE rowid = old.id;
            DELETE FROM messages_fts WHERE rowid IN
                (SELECT id FROM messages WHERE conversation_id = old.id); END"""
    )


def _v4(db: sqlite3.Connection) -> None:
    """Each reply's profile identity (``core/config/identity.py``): the digest of its model file
    and flags, which per-profile figures (the picker's last speed) are looked up by. Replies
    stored before have none (``NULL``): they never count as any profile's figures, since which
    flags served them is unknown."""
    db.execute("ALTER TABLE messages ADD COLUMN profile_identity TEXT")
    db.execute("CREATE INDEX messages_by_identity ON messages (profile_identity, id)")


def _v5(db: sqlite3.Connection) -> None:
    """Decode runs kept by profile identity (``DecodeOwner``), not by profile name: a row's
    ``profile_identity`` is the profile's (``NULL`` for an attached server's). Rows stored before
    are keyed by name and model, which no owner's key equals: they are ignored (which flags
    decoded them is unknown), and the next reply of each profile records its own."""
    db.execute("ALTER TABLE decode_runs ADD COLUMN profile_identity TEXT")


# Forward migrations: entry i takes the schema from version i to i + 1. Append, never edit.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_v1, _v2, _v3, _v4, _v5)
SCHEMA_VERSION = len(MIGRATIONS)
