"""Make the README's screenshots: SVGs of the demo, exported by Textual's screenshot support.

Generates the small demo model, starts the real llama-server through the app (headless, 140x42),
asks one question, and saves the main screen, the dashboard and the profile picker to
docs/screenshots/. Run on demand:  python scripts/screenshots.py
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from coder_tui.core.config.loader import load_config
from coder_tui.core.demo.build import prepare_demo
from coder_tui.core.server.ports import free_port
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui.app import CoderApp
from coder_tui.ui.widgets.prompt import PromptInput

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


async def until(cond: object, timeout_s: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not cond():  # type: ignore[operator]
        if loop.time() > end:
            raise TimeoutError
        await asyncio.sleep(0.05)


async def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="shots-"))
    demo = prepare_demo(tmp / "demo", "small", port=free_port())
    config = load_config(demo.config_path)
    config = replace(config, server=replace(config.server, port=free_port()))
    OUT.mkdir(parents=True, exist_ok=True)
    with HistoryStore(tmp / "history.sqlite3") as store:
        app = CoderApp(config, store=store)
        async with app.run_test(size=(140, 42)) as pilot:
            await until(lambda: app.main is not None and app.main.server_ready)
            main = app.main
            assert main is not None
            prompt = main.query_one(PromptInput)
            prompt.post_message(
                PromptInput.Submitted(prompt, "Write a Python function that adds two numbers.")
            )
            await until(lambda: not main.generating and len(main.query("MessageView")) == 2)
            await asyncio.sleep(2.5)  # two metric samples with the reply's speed
            app.save_screenshot("main.svg", str(OUT))
            await pilot.press("f4")
            await asyncio.sleep(1.2)
            app.save_screenshot("dashboard.svg", str(OUT))
            await pilot.press("f4")
            await pilot.press("f6")
            await asyncio.sleep(1.0)
            app.save_screenshot("profiles.svg", str(OUT))
            await pilot.press("escape")
            await pilot.press("ctrl+q")
    print(f"wrote {', '.join(p.name for p in sorted(OUT.glob('*.svg')))} to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
