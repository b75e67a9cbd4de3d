"""The line above the prompt that says the chat is not being saved, and the message that asks for it.

``HistoryTrouble`` is posted (from any thread) when the history store starts to work in memory
(``core/store/db.py``); the main screen then mounts a ``HistoryNote`` above the prompt, so the
state stays in view after the notification has gone. The text is the store's one line.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message
from textual.widgets import Static


@dataclass
class HistoryTrouble(Message):
    """The history is no longer saved: ``line`` says why and how to export the chat."""

    line: str


class HistoryNote(Static):
    """``unsaved · <why>`` in the error colour, one line, above the prompt."""

    DEFAULT_CSS = """
    HistoryNote { height: auto; color: $error; text-style: bold; padding: 0 1; }
    """

    def __init__(self, line: str) -> None:
        super().__init__(f"unsaved · {line}", markup=False, id="history-note")
