"""The chat pane without a server: reopening history, copying code, switching conversations."""

from __future__ import annotations

from coder_tui.core.chat.code_blocks import last_code_block
from coder_tui.core.config.loader import Config
from coder_tui.core.metrics.types import MetricsSnapshot
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui.app import CoderApp
from coder_tui.ui.screens.main import MainScreen
from coder_tui.ui.widgets.message import MessageView
from coder_tui.ui.widgets.prompt import PromptInput


def test_last_code_block() -> None:
    assert last_code_block("a\n```py\nx = 1\n```\nb\n```\ny\n```") == "y\n"
    assert last_code_block("no code") is None
    assert last_code_block("```js\nlet a = 1\n") == "let a = 1\n"  # still streaming


async def test_reopens_last_conversation_with_interrupted_reply(
    offline_config: Config, store: HistoryStore, seeded: int
) -> None:
    app = CoderApp(offline_config, autostart=False, store=store)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert isinstance(app.focused, PromptInput)
        views = list(app.screen.query(MessageView))
        assert [v.role for v in views] == ["user", "assistant", "user", "assistant"]
        assert views[-1].has_class("interrupted")
        assert "interrupted" in str(views[-1].query_one(".stats").render())
        assert "21.8 tok/s" in str(views[1].query_one(".stats").render())


async def test_copy_last_code_block(offline_config: Config, store: HistoryStore) -> None:
    conv = store.new_conversation("code")
    store.add_user_message(conv.id, "hi")
    msg = store.begin_reply(conv.id, "p", "m")
    store.finish_reply(msg, "x\n```python\nprint('hi')\n```\n", "complete")
    app = CoderApp(offline_config, autostart=False, store=store)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+b")
        assert app.clipboard == "print('hi')\n"


async def test_prompt_is_not_sent_while_server_down(
    offline_config: Config, store: HistoryStore
) -> None:
    app = CoderApp(offline_config, autostart=False, store=store)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press(*"hello")
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.query_one(PromptInput).text == "hello"  # kept, not lost
        assert store.list_conversations() == []


async def test_multiline_prompt_keys(offline_config: Config, store: HistoryStore) -> None:
    app = CoderApp(offline_config, autostart=False, store=store)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("a", "ctrl+j", "b")
        assert app.screen.query_one(PromptInput).text == "a\nb"


async def test_switch_new_rename_delete_conversations(
    offline_config: Config, store: HistoryStore, seeded: int
) -> None:
    first = seeded
    other = store.new_conversation("Other chat")
    store.add_user_message(other.id, "only a prompt here")
    app = CoderApp(offline_config, autostart=False, store=store)
    async with app.run_test(size=(100, 30)) as pilot:
        main = app.screen
        assert isinstance(main, MainScreen)
        assert main.conversation is not None and main.conversation.id == other.id
        await pilot.press("ctrl+l")
        await pilot.pause()
        await pilot.press("down", "enter")  # the list is most recent first: the seeded one next
        await pilot.pause()
        assert main.conversation is not None and main.conversation.id == first
        assert len(main.query(MessageView)) == 4
        await pilot.press("ctrl+l")
        await pilot.pause()
        await pilot.press("r", *"Renamed", "enter")
        await pilot.pause()
        await pilot.press("e")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert {c.title for c in store.list_conversations()} >= {"Renamed"}
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert main.conversation is None and len(main.query(MessageView)) == 0


async def test_a_snapshot_while_the_screen_empties_is_ignored(
    offline_config: Config, store: HistoryStore
) -> None:
    # Seen once in a benchmark: a MetricsUpdated that arrived as the app closed found no strip.
    from coder_tui.ui.widgets.tile_grid import Dashboard, MetricsStrip

    app = CoderApp(offline_config, autostart=False, store=store)
    async with app.run_test(size=(80, 24)):
        main = app.main
        assert main is not None
        await main.query_one(MetricsStrip).remove()
        await main.query_one(Dashboard).remove()
        main.show_metrics(app.metrics.last or _empty_snapshot())  # no NoMatches


def _empty_snapshot() -> MetricsSnapshot:
    from coder_tui.core.metrics.series import History
    from coder_tui.core.metrics.types import GpuSnapshot

    gpu = GpuSnapshot(available=False, reason="no NVIDIA GPU")
    return MetricsSnapshot(
        time_s=0.0, gpu=gpu, host=None, server=None, moe=None, history=History(10, 1)
    )


async def test_a_new_stats_line_of_one_row_repaints_without_a_layout(
    offline_config: Config, store: HistoryStore, seeded: int
) -> None:
    """A quiet reply's token count changes every 2 s: each change repaints the line in place."""
    app = CoderApp(offline_config, autostart=False, store=store)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        view = list(app.screen.query(MessageView))[1]
        stats = view.query_one(".stats")
        layouts: list[bool] = []
        original = stats.refresh

        def spy(*args: object, layout: bool = False, **kwargs: object) -> object:
            layouts.append(layout)
            return original(*args, layout=layout, **kwargs)  # type: ignore[arg-type]

        stats.refresh = spy  # type: ignore[method-assign]
        view.set_stats("generating · 0 tokens")  # the stored reply's line had two rows
        await pilot.pause()
        view.set_stats("generating · 120 tokens")
        view.set_stats("generating · 240 tokens")
        assert layouts == [True, False, False]
        view.set_stats("x " * 80)  # wraps: the message grows
        await pilot.pause()
        view.set_stats("done")  # from two rows back to one
        assert layouts[3:] == [True, True]
        await pilot.pause()
        assert "done" in str(stats.render())
        view.set_stats("")
        assert not stats.display
