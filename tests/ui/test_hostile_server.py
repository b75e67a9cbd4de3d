"""The TUI facing a hostile server: a binary that prints random bytes makes F2 say so (it used to
crash the start worker silently), and the log pane stays bounded and shows escapes and bidi
controls visibly whatever the server writes."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from coder_tui.core.config.loader import Config, ServerSettings
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui.app import CoderApp
from coder_tui.ui.widgets.server_log import SHOWN_CHARS, ServerLog


async def test_f2_with_a_binary_printing_random_bytes_says_why(
    offline_config: Config, store: HistoryStore, fake_server_binary: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("FAKE_MODE", "junk_help")
    config = replace(offline_config, server=ServerSettings(binary=fake_server_binary, port=8084))
    app = CoderApp(config, autostart=False, store=store, sample_metrics=False)
    async with app.run_test(size=(120, 30), notifications=True) as pilot:
        await pilot.press("f2")
        for _ in range(100):
            await pilot.pause(0.1)
            if app._notifications:
                break
        notices = [n.message for n in app._notifications]
    assert notices == [
        f"{fake_server_binary}: --help did not list llama-server options (its output is not text)"
    ]


async def test_the_log_pane_is_bounded_and_shows_controls(store: HistoryStore) -> None:
    from textual.app import App, ComposeResult

    class Host(App[None]):
        def compose(self) -> ComposeResult:
            yield ServerLog(max_lines=500)

    app = Host()
    async with app.run_test(size=(100, 20)) as pilot:
        log = app.query_one(ServerLog)
        log.add_lines(["\x1b]52;c;aGk=\x07x\u202ey" + "z" * 5000] * 3000)
        await pilot.pause()
        lines = [line.text for line in log.lines]
    assert len(lines) == 500
    assert all(len(text) <= SHOWN_CHARS + 40 for text in lines)
    assert lines[-1].startswith("]52;c;aGk=x⟨U+202E⟩yzzz")
    await asyncio.sleep(0)
