"""SVG snapshots of the chat screen at the three sizes every screen is checked at (80x24, 120x40
and 200x60).

The screen shows the seeded conversation (a code reply, then an interrupted reply) with the server
never started and metrics sampling off (the GPU, RAM and CPU tiles would show the machine running the
test), so nothing on it varies between runs: the config fixes the port (8084) and the model file
name, the store lives in a temp folder that the screen never shows, and the seeded replies carry
fixed numbers. Regenerate with ``pytest tests/ui/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot

from coder_tui.core.config.loader import Config
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui.app import CoderApp


async def _settle(pilot: Pilot[Any]) -> None:
    """Wait until two frames in a row are identical (bounded).

    The transcript's Markdown bodies parse and mount after the screen does, and the anchored
    transcript re-scrolls as they grow; a screenshot taken on the first idle frame catches that
    half-way (the scroll position differed between runs).
    """
    previous = ""
    for _ in range(40):
        await pilot.pause(0.05)
        frame = pilot.app.export_screenshot()
        if frame == previous:
            return
        previous = frame
    raise AssertionError("the chat screen kept changing for 2 s")


@pytest.mark.parametrize(
    "size", [(80, 24), (120, 40), (200, 60)], ids=["80x24", "120x40", "200x60"]
)
def test_chat_screen(
    snap_compare: Any,
    offline_config: Config,
    store: HistoryStore,
    seeded: int,
    size: tuple[int, int],
) -> None:
    app = CoderApp(offline_config, autostart=False, store=store, sample_metrics=False)
    assert snap_compare(app, terminal_size=size, run_before=_settle)
