"""Chat history in SQLite: conversations and messages, saved as they happen, never lost.

``HistoryStore`` is the one object the rest of coder-tui uses; this module owns its conversations
(create, list, rename, delete) and reading messages back, and re-exports the names callers import
from here. Its parts live beside it: ``db.py`` (the file at ``app_paths().history_db``, the
connection, migrations, transactions), ``messages.py`` (saving the prompt before it is sent and
the reply while it streams, and keeping a reply whose write failed), ``schema.py`` (tables and
records) and ``markdown.py`` (a conversation as Markdown). What to show and when is the UI's
business; text is stored as the chat client yielded it (already sanitised). Values out are frozen
dataclasses, never live rows. Times are Unix seconds.

A write that fails (disk full, the database locked by another process past the busy timeout)
raises ``HistoryWriteError``: one line saying why, for the UI to show. Nothing is dropped quietly.
"""

from __future__ import annotations

import time
from typing import cast

from coder_tui.core.store.db import HistoryWriteError
from coder_tui.core.store.markdown import conversation_markdown
from coder_tui.core.store.markdown import stats_line as stats_line  # re-exported for the UI
from coder_tui.core.store.messages import MessageWrites
from coder_tui.core.store.schema import (
    SCHEMA_VERSION,
    Conversation,
    DecodeRun,
    MessageStatus,
    Role,
    StoredMessage,
    decode_key,
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


class HistoryStore(MessageWrites):
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

    def delete(self, conv_id: int) -> None:
        """Delete a conversation and (cascade) its messages."""
        with self._write() as db:
            db.execute("DELETE FROM conversations WHERE id = ?", (conv_id,))

    # -- reading messages -----------------------------------------------------------------------

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

    # -- how replies decoded (core/decode_memory.py) --------------------------------------------

    def record_decode(self, profile: str | None, model: str | None, run: DecodeRun) -> None:
        """Remember how the newest reply of ``profile`` and ``model`` decoded (one row each)."""
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO decode_runs "
                "(key, at, tokens_per_second, cpu_saturated, quiet) VALUES (?, ?, ?, ?, ?)",
                (
                    decode_key(profile, model),
                    time.time(),
                    run.tokens_per_second,
                    int(run.cpu_saturated),
                    int(run.quiet),
                ),
            )

    def last_decode(self, profile: str | None, model: str | None) -> DecodeRun | None:
        rows = self._read(
            "SELECT tokens_per_second, cpu_saturated, quiet FROM decode_runs WHERE key = ?",
            (decode_key(profile, model),),
        )
        if not rows:
            return None
        speed, saturated, quiet = rows[0]
        return DecodeRun(float(speed), bool(saturated), bool(quiet))  # type: ignore[arg-type]

    def message(self, msg_id: int) -> StoredMessage | None:
        sql = f"SELECT {_MSG_COLUMNS} FROM messages WHERE id = ?"  # noqa: S608 (constant columns)
        rows = self._read(sql, (msg_id,))
        return StoredMessage(*rows[0]) if rows else None  # type: ignore[arg-type]

    # -- export ---------------------------------------------------------------------------------

    def export_markdown(self, conv_id: int) -> str:
        """The conversation as Markdown (``store_export.conversation_markdown``)."""
        conv = self.conversation(conv_id)
        if conv is None:
            raise KeyError(conv_id)
        return conversation_markdown(conv, self.messages(conv_id))
