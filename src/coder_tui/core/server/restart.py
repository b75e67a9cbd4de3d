"""Recovering from a fault: the automatic-restart budget and the one-line texts that offer recovery.

``RestartPolicy`` decides whether a crashed server may be restarted without asking (at most
``max_restarts`` in ``window_s``, waiting longer before each) and words the refusal. The notice
turns a startup's count of interrupted replies into what the user reads (how a reply ended is
``core/chat/events.py``'s ``reply_end_notice``).
Restarting itself is ``process.py``'s; wiring these into the screen is the UI's.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class RestartPolicy:
    """At most ``max_restarts`` automatic restarts in any ``window_s`` seconds, with backoff."""

    max_restarts: int = 3
    window_s: float = 60.0
    base_backoff_s: float = 1.0
    """Wait before the first restart; doubled for each restart still inside the window."""
    max_backoff_s: float = 8.0
    clock: Callable[[], float] = time.monotonic
    _restarts: deque[float] = field(default_factory=deque, repr=False)

    def _prune(self) -> None:
        now = self.clock()
        while self._restarts and now - self._restarts[0] >= self.window_s:
            self._restarts.popleft()

    def next_delay(self) -> float | None:
        """Seconds to wait before the next automatic restart; ``None`` when the budget is spent."""
        self._prune()
        if len(self._restarts) >= self.max_restarts:
            return None
        return float(min(self.base_backoff_s * 2 ** len(self._restarts), self.max_backoff_s))

    def record(self) -> None:
        """Count a restart that was made now."""
        self._restarts.append(self.clock())

    def reset(self) -> None:
        """Forget past restarts (the user restarted by hand, or the server ran well)."""
        self._restarts.clear()

    def refusal(self) -> str:
        """The line shown when the budget is spent."""
        return (
            f"llama-server crashed {self.max_restarts + 1} times within {self.window_s:g} s; "
            "not restarting it again automatically: fix the cause, then restart it by hand"
        )


def interrupted_notice(count: int) -> str | None:
    """The line shown at startup when ``HistoryStore.mark_interrupted`` found cut-off replies."""
    if count <= 0:
        return None
    what = "1 reply was" if count == 1 else f"{count} replies were"
    return (
        f"{what} cut off when coder-tui last stopped; the text so far is kept, marked interrupted"
    )
