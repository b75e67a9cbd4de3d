"""Chat history in SQLite: conversations and messages, saved as they happen, never lost.

``HistoryStore`` is the one object the rest of coder-tui uses; this module owns its conversations
(create, list, rename, delete, search), reading messages back, and ``open_history`` (the app's
way in: a damaged file moved aside, a store that degrades), and re-exports the names callers
import from here. Its parts live beside it: ``db.py`` (the file at ``app_paths().history_db``,
the connection, migrations, transactions, going on in memory), ``owners.py`` (one instance per
open conversation), ``messages.py`` (saving the prompt before it is sent and the reply while it
streams), ``turns.py`` (edit, delete, alternatives, settings), ``search.py``, ``schema.py``
(tables and records) and ``markdown.py`` (a conversation as Markdown). What to show and when is
the UI's business; text is stored as the chat client yielded it (already sanitised). Values out
are frozen dataclasses, never live rows. Times are Unix seconds.

A write that fails (disk full, the database locked by another process past the busy timeout)
raises ``HistoryWriteError`` from a strict store: one line saying why; a degrading one goes on in
memory and says so in ``trouble``. Nothing is dropped quietly.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path
from typing import cast

from coder_tui.core.store.db import HistoryWriteError, is_damaged
from coder_tui.core.store.markdown import conversation_markdown
from coder_tui.core.store.markdown import stats_line as stats_line  # re-exported for the UI
from coder_tui.core.store.owners import ConversationTaken
from coder_tui.core.store.schema import (
    SCHEMA_VERSION,
    Conversation,
    ConversationSettings,
    DecodeOwner,
    DecodeRun,
    MessageStatus,
    Role,
    StoredMessage,
    status_for_end,
)
from coder_tui.core.store.search import SNIPPET_TOKENS, SearchHit, fts_query
from coder_tui.core.store.turns import TurnEdits

__all__ = [
    "SCHEMA_VERSION",
    "Conversation",
    "ConversationSettings",
    "ConversationTaken",
    "HistoryStore",
    "HistoryWriteError",
    "MessageStatus",
    "Role",
    "SearchHit",
    "StoredMessage",
    "open_history",
    "status_for_end",
]

_MSG_COLUMNS = (
    "m.id, m.conversation_id, m.role, m.content, m.status, m.profile, m.model, m.created_at, "
    "m.updated_at, m.prompt_tokens, m.completion_tokens, m.ttft_s, m.prompt_per_second, "
    "m.predicted_per_second, m.finish_reason, m.error, m.quant, "
    "(SELECT count(*) FROM messages a WHERE a.slot = m.slot AND a.id <= m.id), "
    "(SELECT count(*) FROM messages a WHERE a.slot = m.slot), m.profile_identity"
)
_CONV_COLUMNS = "id, title, created_at, updated_at, system_prompt, temperature, top_p, max_tokens"


def _moved_aside(path: Path) -> Path:
    """Move a damaged database (and its WAL and shared-memory files) aside; the new name."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    os.replace(path, aside)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            with contextlib.suppress(OSError):
                os.replace(side, aside.with_name(aside.name + suffix))
    return aside


def open_history(path: Path, *, busy_timeout_s: float = 5.0) -> HistoryStore:
    """The app's store: degrading (``db.py``), and a damaged file moved aside first, with its new
    path in ``notices``, before a fresh one is made. Never raises for a broken or unusable file
    (a schema newer than this coder-tui is still refused: nothing is moved for that)."""
    try:
        return HistoryStore(path, busy_timeout_s=busy_timeout_s, degrade=True)
    except sqlite3.DatabaseError as exc:
        if not is_damaged(exc):
            raise
        reason = str(exc).splitlines()[0]
    try:
        aside = _moved_aside(path)
    except OSError as exc:
        store = HistoryStore(Path(":memory:"), degrade=True, memory=True)
        store._in_trouble(
            f"chat history {path} is damaged ({reason}) and cannot be moved aside "
            f"({exc.strerror or exc})"
        )
        return store
    store = HistoryStore(path, busy_timeout_s=busy_timeout_s, degrade=True)
    store.notices.append(
        f"chat history {path} was damaged ({reason}): moved aside to {aside}; started a fresh one"
    )
    return store


class HistoryStore(TurnEdits):
    """The history database at ``path``, created (0600, folders 0700) and migrated on open."""

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- conversations --------------------------------------------------------------------------

    def new_conversation(
        self, title: str | None = None, system_prompt: str | None = None
    ) -> Conversation:
        """A new, empty conversation. Without a title, the first prompt's first line names it."""
        now = time.time()

        def insert(db: sqlite3.Connection) -> int:
            cur = db.execute(
                "INSERT INTO conversations (title, system_prompt, created_at, updated_at) "
                "VALUES (?, ?, ?, ?)",
                (title or "", system_prompt, now, now),
            )
            conv_id = cast(int, cur.lastrowid)
            self._take(db, conv_id)  # a new conversation is open here
            return conv_id

        conv_id = self._transact(insert)
        return Conversation(conv_id, title or "", now, now, system_prompt)

    def _conversations(self, where: str, args: tuple[object, ...] = ()) -> list[Conversation]:
        rows = self._read(f"SELECT {_CONV_COLUMNS} FROM conversations {where}", args)  # noqa: S608 (constant SQL)
        return [Conversation(*row) for row in rows]  # type: ignore[arg-type]

    def conversation(self, conv_id: int) -> Conversation | None:
        found = self._conversations("WHERE id = ?", (conv_id,))
        return found[0] if found else None

    def list_conversations(self) -> list[Conversation]:
        """Every conversation, the most recently active first."""
        return self._conversations("ORDER BY updated_at DESC, id DESC")

    def last_conversation(self) -> Conversation | None:
        found = self._conversations("ORDER BY updated_at DESC, id DESC LIMIT 1")
        return found[0] if found else None

    def rename(self, conv_id: int, title: str) -> None:
        self._transact(
            lambda db: db.execute(
                "UPDATE conversations SET title = ? WHERE id = ?", (title, conv_id)
            )
        )

    def delete(self, conv_id: int) -> None:
        """Delete a conversation and (cascade) its messages; refused (``ConversationTaken``)
        while another coder-tui has it open."""

        def delete(db: sqlite3.Connection) -> None:
            owner = self._other_owner(db, conv_id)
            if owner is not None:
                raise ConversationTaken(conv_id, owner)
            db.execute("DELETE FROM conversations WHERE id = ?", (conv_id,))

        self._transact(delete)

    def search(self, text: str, limit: int = 50) -> list[SearchHit]:
        """Conversations whose title or messages hold every word of ``text`` (the last one as
        a prefix), the best match first, each once, with a snippet of its best message."""
        query = fts_query(text)
        if query is None:
            return []
        by_text = self._read(
            "SELECT m.conversation_id, m.id, snippet(messages_fts, 0, '[', ']', '…', ?) "
            "FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid "
            "WHERE messages_fts MATCH ? ORDER BY rank LIMIT ?",
            (SNIPPET_TOKENS, query, limit * 4),
        )
        by_title = self._read(
            "SELECT rowid FROM titles_fts WHERE titles_fts MATCH ? ORDER BY rank LIMIT ?",
            (query, limit),
        )
        found: dict[int, tuple[str, int | None]] = {}
        for (conv_id,) in by_title:
            found.setdefault(int(cast(int, conv_id)), ("", None))
        for conv_id, msg_id, snippet in by_text:
            key = int(cast(int, conv_id))
            if not found.get(key, ("", None))[0]:
                found[key] = (str(snippet), int(cast(int, msg_id)))
        hits = []
        for conv_id, (snippet, msg_id) in list(found.items())[:limit]:
            conv = self.conversation(conv_id)
            if conv is not None:
                hits.append(SearchHit(conv, snippet.replace("\n", " "), msg_id))
        return hits

    # -- reading messages -----------------------------------------------------------------------

    def messages(self, conv_id: int) -> list[StoredMessage]:
        """The conversation as shown and sent: each position's active alternative, in order."""
        rows = self._read(
            f"SELECT {_MSG_COLUMNS} FROM messages m WHERE m.conversation_id = ? AND m.active = 1 "  # noqa: S608 (constant columns)
            "ORDER BY m.slot, m.id",
            (conv_id,),
        )
        return [StoredMessage(*row) for row in rows]  # type: ignore[arg-type]

    def alternatives(self, msg_id: int) -> list[StoredMessage]:
        """Every answer in the position of reply ``msg_id``, the oldest first."""
        rows = self._read(
            f"SELECT {_MSG_COLUMNS} FROM messages m WHERE m.slot = "  # noqa: S608 (constant columns)
            "(SELECT slot FROM messages WHERE id = ?) ORDER BY m.id",
            (msg_id,),
        )
        return [StoredMessage(*row) for row in rows]  # type: ignore[arg-type]

    def last_speed(self, identity: str) -> float | None:
        """Generation tokens/s of the newest reply served by the profile whose identity
        (``core/config/identity.py``: its model file and flags) is ``identity`` (the picker).

        Never another profile's: not one of the same name in another config, nor this one's
        before its flags or model changed, nor a reply stored without an identity."""
        rows = self._read(
            "SELECT predicted_per_second FROM messages WHERE profile_identity = ? "
            "AND role = 'assistant' AND predicted_per_second IS NOT NULL "
            "ORDER BY id DESC LIMIT 1",
            (identity,),
        )
        return float(rows[0][0]) if rows else None  # type: ignore[arg-type]

    # -- how replies decoded (core/chat/reply_mode.py) ------------------------------------------

    def record_decode(self, owner: DecodeOwner, run: DecodeRun) -> None:
        """Remember how the newest reply of ``owner`` (a profile's identity, or an attached
        server's address) decoded: one row each."""
        self._transact(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO decode_runs (key, at, tokens_per_second, cpu_saturated, "
                "quiet, profile_identity) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    owner.key,
                    time.time(),
                    run.tokens_per_second,
                    int(run.cpu_saturated),
                    int(run.quiet),
                    owner.identity,
                ),
            )
        )

    def last_decode(self, owner: DecodeOwner) -> DecodeRun | None:
        """How the newest reply of ``owner`` decoded: never one of another profile of the same
        name (another config's, or this one's before its model or flags changed), nor a row
        stored before runs were kept by identity."""
        rows = self._read(
            "SELECT tokens_per_second, cpu_saturated, quiet FROM decode_runs "
            "WHERE key = ? AND profile_identity IS ?",
            (owner.key, owner.identity),
        )
        if not rows:
            return None
        speed, saturated, quiet = rows[0]
        return DecodeRun(float(speed), bool(saturated), bool(quiet))  # type: ignore[arg-type]

    def message(self, msg_id: int) -> StoredMessage | None:
        sql = f"SELECT {_MSG_COLUMNS} FROM messages m WHERE m.id = ?"  # noqa: S608 (constant columns)
        rows = self._read(sql, (msg_id,))
        return StoredMessage(*rows[0]) if rows else None  # type: ignore[arg-type]

    # -- export ---------------------------------------------------------------------------------

    def export_markdown(self, conv_id: int) -> str:
        """The conversation as Markdown (``store_export.conversation_markdown``)."""
        conv = self.conversation(conv_id)
        if conv is None:
            raise KeyError(conv_id)
        return conversation_markdown(conv, self.messages(conv_id))
