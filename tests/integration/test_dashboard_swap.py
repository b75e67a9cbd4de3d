"""The dashboard across a real swap: the real llama-server, two quants of the demo model, F6.

Issue 25: after a swap the dashboard still showed the old profile's ``515 t/s last request``
under the new profile's name. Each speed tile's number must also be its graph's newest point.
"""

from __future__ import annotations

from pathlib import Path

from coder_tui.core.config.loader import Config
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui import format as fmt
from coder_tui.ui.app import CoderApp
from coder_tui.ui.screens.confirm import ConfirmScreen
from coder_tui.ui.screens.dashboard import DashboardScreen
from coder_tui.ui.screens.main import MainScreen
from coder_tui.ui.screens.profiles import ProfilesScreen
from coder_tui.ui.widgets.message import MessageView
from coder_tui.ui.widgets.prompt import PromptInput
from coder_tui.ui.widgets.tile import Graph, MetricTile

from .util import until


async def test_a_swap_never_shows_the_old_profiles_speeds(
    demo_config: Config, tmp_path: Path
) -> None:
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        app = CoderApp(demo_config, store=store)  # sampling the real server, once a second
        async with app.run_test(size=(160, 50)) as pilot:
            await until(lambda: app.main is not None and app.main.server_ready)
            main = app.screen
            assert isinstance(main, MainScreen)
            prompt = main.query_one(PromptInput)

            async def reply(text: str, replies: int) -> None:
                prompt.post_message(PromptInput.Submitted(prompt, text))
                await until(lambda: len(main.query(MessageView)) == replies and not main.generating)

            await reply("hello", 2)
            await pilot.press("f4")
            await until(lambda: isinstance(app.screen, DashboardScreen))
            dashboard = app.screen
            gen = dashboard.query_one("#tile-gen", MetricTile)
            await until(lambda: "last request" in gen.text, 15)

            shown: list[tuple[str | None, str, Graph]] = []  # (header's profile, text, graph)
            original = gen.show

            def spy(text: str, *args: object, **kwargs: object) -> None:
                original(text, *args, **kwargs)  # type: ignore[arg-type]
                shown.append((app.serving.label, gen.text, gen.graph))

            gen.show = spy  # type: ignore[method-assign]

            await pilot.press("f6")  # the swap, from the dashboard, as a user would
            await until(lambda: isinstance(app.screen, ProfilesScreen))
            table = app.screen.query_one("DataTable")
            await until(lambda: table.row_count > 0)  # type: ignore[attr-defined]
            await pilot.press("down")  # from f16 (first row) to q8_0
            await pilot.press("enter")
            await until(lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await until(lambda: app.serving.label == "q8_0" and app.serving.ready)
            await until(lambda: app.screen is dashboard)
            await until(lambda: sum(label == "q8_0" for label, _, _ in shown) >= 3, 15)

            under_q8 = [(text, graph) for label, text, graph in shown if label == "q8_0"]
            assert under_q8 and all("last request" not in text for text, _ in under_q8), under_q8
            # the new run's graph starts empty: nothing of q4_k_m's request in it
            first_text, first_graph = under_q8[0]
            assert first_text == "–" and not any(first_graph.data), first_text

            await reply("again", 4)  # q8_0's own request: its own last request
            await until(lambda: "last request" in gen.text, 15)
            last = app.metrics.last
            assert last is not None
            q8_request = last.speeds.generation.last_request_tokens_per_s
            assert q8_request and f"last request {fmt.tokens(q8_request)}" in gen.text
            # on every tile update, the number is the graph's newest point
            for _, text, graph in shown:
                newest = graph.data[-1] if graph.data else None
                assert text.split("\n")[0].removesuffix(" now") == fmt.tokens(newest), text
            await pilot.press("ctrl+q")
