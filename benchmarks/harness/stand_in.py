"""A Textual driver that takes frames as a terminal's would and hands each one to a callback.

Textual renders to terminal bytes only for a driver that is not headless; this one says it is
not, and instead of writing the bytes anywhere it passes them on (``chat_render`` keeps them to
find token marks, ``big_reply`` keeps only when each came). No terminal is involved.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.driver import Driver
from textual.drivers.headless_driver import HeadlessDriver


def stand_in_driver(on_frame: Callable[[str], None]) -> type[Driver]:
    """A driver class whose every non-empty write goes to ``on_frame``."""

    class StandInTerminal(HeadlessDriver):
        @property
        def is_headless(self) -> bool:
            return False

        def write(self, data: str) -> None:
            if data:
                on_frame(data)

    return StandInTerminal
