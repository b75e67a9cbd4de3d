"""Messages that carry core events to the App, and the App's log lines to the main screen.

The App's helpers (``ui/control/``) post these to the App, which changes its state (the serving
state, ``ui/serving.py``) and hands the result down. Widget messages live in their widget
(``FleetTable.ChatWith``).
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from coder_tui.core.metrics.fleet import FleetRow
from coder_tui.core.metrics.types import MetricsSnapshot
from coder_tui.core.server.events import ServerEvent
from coder_tui.core.server.swap import SwapEvent


@dataclass
class ServerEventMessage(Message):
    """One event from the server manager (state change, log line, ready, exit)."""

    event: ServerEvent


@dataclass
class ServerFailed(Message):
    """A start or stop failed with a user-facing message."""

    text: str


@dataclass
class PortTaken(Message):
    """Another coder-tui manages the port: watch its server at ``url`` instead of starting one."""

    url: str


@dataclass
class SwapReport(Message):
    """A swap's progress or its end (from the picker's swap, compare mode or the bench)."""

    event: SwapEvent


@dataclass
class ServerLogLines(Message):
    """Lines for the server log (the App posts them to the main screen, which shows them)."""

    lines: tuple[str, ...]


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
