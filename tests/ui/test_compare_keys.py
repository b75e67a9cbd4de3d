"""Compare mode's keys with the focus anywhere (issue 25), and the palette's "Compare A vs B".

Every key that compare's footer or help (F1) shows, in any focus state, runs its action with
the focus in each focusable widget, unless that widget types it (a letter in a text field).
Ctrl+D and Ctrl+E were shown there but taken by the prompt (delete right, end of line).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from textual.keys import key_to_character
from textual.widget import Widget
from textual.widgets import Footer, Input, Select

from coder_tui.core.config.loader import Config
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui.app import CoderApp
from coder_tui.ui.keys import SCREEN, key_name
from coder_tui.ui.screens.compare import CompareScreen
from coder_tui.ui.screens.help import key_lines


def _three(config: Config) -> Config:
    current = config.profile()
    return replace(
        config,
        profiles={
            "q4_k_m": current,
            "q8_0": replace(current, name="q8_0", model=current.model.with_name("Demo-Q8_0.gguf")),
            "f16": replace(current, name="f16", model=current.model.with_name("Demo-F16.gguf")),
        },
    )


def _app(config: Config, store: HistoryStore) -> CoderApp:
    return CoderApp(config, autostart=False, store=store, sample_metrics=False)


def _advertised(app: CoderApp, screen: CompareScreen) -> dict[str, str]:
    """What the help and the footer show now: the key to press → the action named."""
    press = {key_name(k): k for node in (app, screen) for k in node._bindings.key_to_bindings}
    shown: dict[str, str] = {}
    for line in key_lines(app, screen):
        for display in line.keys:
            shown[press.get(display, display)] = line.action
    footer = screen.query_one(Footer)
    for item in footer.children:
        display = str(getattr(item, "key_display", ""))
        key = str(getattr(item, "key", ""))
        assert shown.get(key) == str(getattr(item, "action", "")), (display, shown)
    return shown


async def test_every_advertised_compare_key_works_with_the_focus_anywhere(
    offline_config: Config, store: HistoryStore
) -> None:
    app = _app(_three(offline_config), store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f7")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        ran: list[tuple[str, Any]] = []
        real_run_action = app.run_action

        async def spy(action: str, default_namespace: Any = None) -> bool:
            ran.append((action, default_namespace))
            if action in ("toggle_diff", "export"):  # the screen's own: run them for real
                return await real_run_action(action, default_namespace)
            return True  # the App's (start the server, quit...): noted, not run

        app.run_action = spy  # type: ignore[method-assign]
        notes: list[str] = []
        app.notify = lambda message, **_: notes.append(message)  # type: ignore[method-assign]

        # Every focus state: each focusable widget, in the replies view and in the diff view.
        states: list[tuple[bool, Widget]] = [(False, w) for w in screen.focus_chain]
        screen.add_class("-diff")
        await pilot.pause()
        states += [(True, w) for w in screen.focus_chain if w.id == "diff"]
        screen.remove_class("-diff")
        ids = {w.id for _, w in states}
        assert {"prompt-in", "a", "b", "repeats", "fixed", "run", "diff"} <= ids, ids

        async def put(diff: bool, widget: Widget) -> None:
            """The focus on ``widget``, in the diff view or not (a key may have changed them)."""
            if screen.has_class("-diff") != diff or screen.focused is not widget:
                screen.set_class(diff, "-diff")
                widget.focus()
                await pilot.pause()

        shown_anywhere: dict[str, str] = {}
        for diff, widget in states:
            await put(diff, widget)
            shown = _advertised(app, screen)
            # The screen's own keys and the F-keys are shown whatever has the focus.
            for key in ("escape", "ctrl+t", "ctrl+s", "f1", "f2", "f3", "f7", "ctrl+p"):
                assert key in shown, (widget.id, key, shown)
            shown_anywhere.update(shown)
        assert shown_anywhere["ctrl+t"] == "toggle_diff"
        assert shown_anywhere["ctrl+s"] == "export"
        assert not {"ctrl+d", "ctrl+e"} & shown_anywhere.keys()

        for diff, widget in states:
            for key, action in shown_anywhere.items():
                if action == "run":
                    continue  # Enter, a typed key read by the prompt (the next test)
                await put(diff, widget)
                if widget.check_consume_key(key, key_to_character(key)):
                    assert key not in _advertised(app, screen), (widget.id, key)
                    continue  # a letter typed into a text field: shown only when it is a key
                ran.clear()
                notes.clear()
                await pilot.press(key)
                if ran and (ran[0][0], action) == ("copy", "screen.copy_text"):
                    assert ran[0][1] is widget  # a text field copies its own selection: the same
                    continue
                assert [a for a, _ in ran] == [action], (widget.id, key, ran)
                assert ran[0][1] in (app, screen), (widget.id, key, ran)
                assert app.screen is screen, (widget.id, key)
                # The screen's own actions did what they say, with this focus too.
                if action == "toggle_diff":
                    assert screen.has_class("-diff") is not diff, widget.id
                if action == "export":
                    assert notes == ["nothing to export yet"], widget.id


async def test_enter_in_the_prompt_runs_as_the_help_says(
    offline_config: Config, store: HistoryStore
) -> None:
    app = _app(_three(offline_config), store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f7")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        runs: list[str] = []
        screen.start = lambda: runs.append("run")  # type: ignore[method-assign]
        lines = [line for line in key_lines(app, screen) if line.group == SCREEN]
        assert any(line.keys == ("Enter",) and "run" in line.description for line in lines)
        assert isinstance(screen.focused, Input) and screen.focused.id == "prompt-in"
        await pilot.press("enter")
        await pilot.pause()
        assert runs == ["run"]
        # The chat's typed keys are not compare's: its prompt has no "send" and no new line.
        assert not any(line.action in ("send", "newline") for line in key_lines(app, screen))


async def test_the_palette_opens_compare_with_a_and_b_chosen_and_enter_runs(
    offline_config: Config, store: HistoryStore
) -> None:
    config = _three(offline_config)
    app = _app(config, store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"compare q8_0 vs f16")
        await pilot.pause(0.3)  # the palette searches in a worker
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        assert screen.query_one("#a", Select).value == "q8_0"
        assert screen.query_one("#b", Select).value == "f16"
        started: list[tuple[str, str, str]] = []
        screen._run = lambda a, b, prompt, *_: started.append(  # type: ignore[method-assign]
            (a.name, b.name, prompt)
        )
        await pilot.press(*"write a function", "enter")
        await pilot.pause()
        assert started == [("q8_0", "f16", "write a function")]
        # Chosen again from compare mode: the same screen takes the new pair, no second one.
        depth = len(app.screen_stack)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"compare f16 vs q4_k_m")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen and len(app.screen_stack) == depth
        assert screen.query_one("#a", Select).value == "f16"
        assert screen.query_one("#b", Select).value == "q4_k_m"
        assert screen.focused is not None and screen.focused.id == "prompt-in"


async def test_the_palette_lists_each_ordered_pair_only_when_searched(
    offline_config: Config, store: HistoryStore
) -> None:
    app = _app(_three(offline_config), store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        commands = list(app.get_system_commands(app.screen))
        pairs = [c for c in commands if c.title.startswith("Compare ") and " vs " in c.title]
        assert sorted(c.title for c in pairs) == sorted(
            f"Compare {a} vs {b}"
            for a in ("q4_k_m", "q8_0", "f16")
            for b in ("q4_k_m", "q8_0", "f16")
            if a != b
        )
        assert not any(c.discover for c in pairs)  # typed for, not in the unfiltered list
        assert any(c.title == "Compare profiles" and c.discover for c in commands)
