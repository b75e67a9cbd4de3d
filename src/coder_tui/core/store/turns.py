"""Changing a conversation after the fact: edit a prompt, delete a message or a turn, pick among a
reply's alternatives, and the conversation's own settings.

Owns ``TurnEdits`` (a base of ``HistoryStore``). Positions are ``slot``s (``schema.py`` v3): a
regenerated reply shares the slot of the one it answers again, one alternative per slot is
``active`` (shown and sent), and nothing here drops an alternative unless asked to delete it.
Editing a prompt removes what came after it (the resend answers the edited prompt); every change
is refused with ``ConversationTaken`` while another coder-tui has the conversation open
(``owners.py``). Saving replies is ``messages.py``'s; reading them, ``history.py``'s.
"""

from __future__ import annotations

import sqlite3
import time

from coder_tui.core.store.messages import MessageWrites
from coder_tui.core.store.schema import ConversationSettings


def _conv_and_slot(db: sqlite3.Connection, msg_id: int) -> tuple[int, int, str] | None:
    row = db.execute(
        "SELECT conversation_id, slot, role FROM messages WHERE id = ?", (msg_id,)
    ).fetchone()
    return None if row is None else (int(row[0]), int(row[1]), str(row[2]))


class TurnEdits(MessageWrites):
    """Edits of stored conversations (its base holds the connection and the message writes)."""

    def set_settings(self, conv_id: int, settings: ConversationSettings) -> None:
        """Store the conversation's system prompt and sampling settings (``None``: the config's)."""

        def store(db: sqlite3.Connection) -> None:
            self._check_owner(db, conv_id)
            db.execute(
                "UPDATE conversations SET system_prompt = ?, temperature = ?, top_p = ?, "
                "max_tokens = ? WHERE id = ?",
                (
                    settings.system_prompt,
                    settings.temperature,
                    settings.top_p,
                    settings.max_tokens,
                    conv_id,
                ),
            )

        self._transact(store)

    def edit_message(self, msg_id: int, text: str) -> int:
        """Replace a prompt's text and remove every message after it (the caller then asks for
        a new reply); returns how many were removed."""

        def edit(db: sqlite3.Connection) -> int:
            found = _conv_and_slot(db, msg_id)
            if found is None:
                raise KeyError(msg_id)
            conv_id, slot, role = found
            if role != "user":
                raise ValueError("only a prompt can be edited")
            self._check_owner(db, conv_id)
            db.execute(
                "UPDATE messages SET content = ?, updated_at = ? WHERE id = ?",
                (text, time.time(), msg_id),
            )
            cur = db.execute(
                "DELETE FROM messages WHERE conversation_id = ? AND slot > ?", (conv_id, slot)
            )
            return int(cur.rowcount)

        return self._transact(edit)

    def delete_message(self, msg_id: int) -> None:
        """Delete one message; a reply's other alternatives stay (the newest is shown)."""

        def delete(db: sqlite3.Connection) -> None:
            found = _conv_and_slot(db, msg_id)
            if found is None:
                return
            conv_id, slot, _ = found
            self._check_owner(db, conv_id)
            db.execute("DELETE FROM messages WHERE id = ?", (msg_id,))
            self._show_newest(db, slot)

        self._transact(delete)

    def delete_turn(self, msg_id: int) -> int:
        """Delete the turn holding ``msg_id``: its prompt and every reply (alternatives too)
        up to the next prompt; returns how many messages went."""

        def delete(db: sqlite3.Connection) -> int:
            found = _conv_and_slot(db, msg_id)
            if found is None:
                return 0
            conv_id, slot, _ = found
            self._check_owner(db, conv_id)
            start = db.execute(
                "SELECT max(slot) FROM messages WHERE conversation_id = ? AND role = 'user' "
                "AND slot <= ?",
                (conv_id, slot),
            ).fetchone()[0]
            start = slot if start is None else int(start)
            end = db.execute(
                "SELECT min(slot) FROM messages WHERE conversation_id = ? AND role = 'user' "
                "AND slot > ?",
                (conv_id, start),
            ).fetchone()[0]
            cur = db.execute(
                "DELETE FROM messages WHERE conversation_id = ? AND slot >= ? AND slot < ?",
                (conv_id, start, end if end is not None else 1 << 62),
            )
            return int(cur.rowcount)

        return self._transact(delete)

    def choose_alternative(self, msg_id: int) -> None:
        """Show (and send from now on) this alternative of its reply."""

        def choose(db: sqlite3.Connection) -> None:
            found = _conv_and_slot(db, msg_id)
            if found is None:
                raise KeyError(msg_id)
            conv_id, slot, _ = found
            self._check_owner(db, conv_id)
            db.execute("UPDATE messages SET active = (id = ?) WHERE slot = ?", (msg_id, slot))

        self._transact(choose)

    @staticmethod
    def _show_newest(db: sqlite3.Connection, slot: int) -> None:
        if db.execute("SELECT 1 FROM messages WHERE slot = ? AND active = 1", (slot,)).fetchone():
            return
        db.execute(
            "UPDATE messages SET active = 1 WHERE id = (SELECT max(id) FROM messages WHERE slot = ?)",
            (slot,),
        )
