"""Messages that carry core events up to the App and its widgets (attributes down, messages up)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from coder_tui.core.metrics.fleet import FleetRow
from coder_tui.core.metrics.types import MetricsSnapshot
from coder_tui.core.server.events import ServerEvent


@dataclass
class ServerEventMessage(Message):
    """One event from the server manager (state change, log line, ready, exit)."""

    event: ServerEvent


@dataclass
class ServerFailed(Message):
    """A start or stop failed with a user-facing message."""

    text: str


class MetricsUpdated(Message):
    """A new metrics snapshot. Replaceable: a slow frame drops stale samples, not fresh ones."""

    def __init__(self, snapshot: MetricsSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, MetricsUpdated)


class FleetUpdated(Message):
    """New rows for the fleet view (replaceable, like metrics)."""

    def __init__(self, rows: tuple[FleetRow, ...]) -> None:
        super().__init__()
        self.rows = rows

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, FleetUpdated)
