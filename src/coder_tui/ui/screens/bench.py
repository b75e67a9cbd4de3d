"""The bench screen (F9): the headless ``coder-tui bench`` run from the TUI, with live progress.

Runs ``core.bench.BenchRun`` through the App's own server manager (it owns the port): profiles are
loaded in turn (A B A B ...), then the profile that served before is started again. Esc stops the
run and keeps what finished. The result is the same Markdown report the CLI prints, and it is
saved in the history database like a CLI run.

The form starts with the CLI's defaults (``types.DEFAULT_*``) and with Run focused (Enter runs;
Enter in any field runs too); check boxes show their state with a mark, not only a colour
(``widgets/marked.py``). Opened again, the screen shows the newest stored bench run until a new
one finishes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import (
    Button,
    Input,
    Label,
    Markdown,
    ProgressBar,
    Static,
)

from coder_tui.core.bench import report
from coder_tui.core.bench.prompts import parse_categories, select_prompts
from coder_tui.core.bench.runner import BenchRun, Finished, Loading, Measured, ServerBackend
from coder_tui.core.bench.store import BenchStore
from coder_tui.core.bench.types import (
    DEFAULT_FIXED_LENGTH,
    DEFAULT_MAX_TOKENS,
    DEFAULT_PROMPTS_PER_CATEGORY,
    DEFAULT_RUNS,
    BenchResult,
    Settings,
)
from coder_tui.core.config.loader import Config, Profile
from coder_tui.core.errors import UserError
from coder_tui.core.paths import app_paths
from coder_tui.core.server.process import ServerManager
from coder_tui.ui.screens.serving_view import ServingView
from coder_tui.ui.widgets.key_footer import KeyFooter
from coder_tui.ui.widgets.marked import MarkedCheckbox, MarkedSelectionList

COMPARE_CATEGORY = "compare"
"""Compare mode's runs share the store (``compare_store``); the bench screen skips them."""


def latest_bench(db_path: Path) -> BenchResult | None:
    """The newest stored bench run that is not a compare, or ``None``."""
    if not db_path.exists():
        return None
    with BenchStore(db_path) as store:
        for summary in store.runs(20):
            result = store.load(summary.run_id)
            if result.settings.categories != (COMPARE_CATEGORY,):
                return result
    return None


class BenchScreen(ServingView):
    """Choose profiles, runs and length; run; read the seed-style table."""

    DEFAULT_CSS = """
    BenchScreen #setup { height: auto; padding: 0 1; }
    BenchScreen SelectionList { height: auto; max-height: 6; width: 1fr; max-width: 30; }
    BenchScreen #options { height: auto; width: 2fr; padding: 0 1; }
    BenchScreen #options > Horizontal { height: 1; }
    BenchScreen #options Input { width: 8; }
    BenchScreen #options #categories { width: 1fr; }
    BenchScreen #status { height: 1; padding: 0 1; color: $text-muted; }
    BenchScreen #progress { display: none; }
    BenchScreen.-running #progress { display: block; }
    BenchScreen #report { height: 1fr; border: round $panel-lighten-2; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "stop_or_back", "Stop / back"),
    ]

    def __init__(
        self,
        config: Config,
        manager: ServerManager,
        *,
        restore: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.manager = manager
        self.restore = restore
        self.bench: BenchRun | None = None
        self.result: BenchResult | None = None

    def compose(self) -> ComposeResult:
        names = list(self.config.profiles)
        current = self.manager.profile_name
        chosen = {current, next((n for n in names if n != current), None)}
        yield self.serving_bar()
        with Horizontal(id="setup"):
            yield MarkedSelectionList(
                *[(n, n, n in chosen) for n in names], id="profiles", compact=True
            )
            with Vertical(id="options"):
                with Horizontal():
                    yield Label("runs ")
                    yield Input(str(DEFAULT_RUNS), id="runs", type="integer", compact=True)
                    yield Label("  max tokens ")
                    yield Input(
                        str(DEFAULT_MAX_TOKENS), id="max-tokens", type="integer", compact=True
                    )
                with Horizontal():
                    yield Label("categories ")
                    yield Input(
                        ",".join(parse_categories(None, self.config.bench.prompts)),
                        id="categories",
                        compact=True,
                    )
                yield MarkedCheckbox(
                    "fixed length (equal work)", DEFAULT_FIXED_LENGTH, id="fixed", compact=True
                )
                yield Button("Run", id="run", variant="primary", compact=True)
        yield ProgressBar(id="progress", show_eta=True)
        yield Static("", id="status", markup=False)
        with VerticalScroll(id="report"):
            yield Markdown("", id="report-md")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#run", Button).focus()
        self._show_last()

    @work(group="bench-last", exit_on_error=False)
    async def _show_last(self) -> None:
        last = await asyncio.to_thread(latest_bench, app_paths().history_db)
        if last is not None and self.result is None and self.bench is None:
            await self.query_one("#report-md", Markdown).update(report.markdown(last))
            self.query_one("#status", Static).update(
                f"last run #{last.run_id}: {len(last.samples)} requests (Enter runs a new one)"
            )

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "run" and self.bench is None:
            self.start()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if self.bench is None:
            self.start()

    def start(self) -> None:
        names = list(self.query_one("#profiles", MarkedSelectionList).selected)
        if not names:
            self.notify("select at least one profile", severity="warning")
            return
        user = self.config.bench.prompts
        try:
            categories = parse_categories(self.query_one("#categories", Input).value or None, user)
        except UserError as exc:
            self.notify(str(exc), severity="error")
            return
        prompts = select_prompts(categories, DEFAULT_PROMPTS_PER_CATEGORY, user)
        settings = Settings(
            runs=max(1, int(self.query_one("#runs", Input).value or str(DEFAULT_RUNS))),
            categories=categories,
            prompt_ids=tuple(p.id for p in prompts),
            max_tokens=max(
                1, int(self.query_one("#max-tokens", Input).value or str(DEFAULT_MAX_TOKENS))
            ),
            fixed_length=self.query_one("#fixed", MarkedCheckbox).value,
        )
        profiles: Mapping[str, Profile] = self.config.profiles
        paths = app_paths()
        backend = ServerBackend(
            self.config.server,
            log_dir=paths.log_dir,
            cache_dir=paths.cache_dir,
            manager=self.manager,
        )
        self.bench = BenchRun([profiles[n] for n in names], prompts, settings, backend)
        self._run(self.bench)

    @work(exclusive=True, group="bench", exit_on_error=False)
    async def _run(self, bench: BenchRun) -> None:
        bar = self.query_one(ProgressBar)
        status = self.query_one("#status", Static)
        self.add_class("-running")  # the bar (animated until the first request ends) shows now
        try:
            async with contextlib.aclosing(bench.events()) as events:
                async for event in events:
                    if isinstance(event, Loading):
                        status.update(f"loading {event.profile}")
                    elif isinstance(event, Measured):
                        p = event.progress
                        bar.update(total=p.total, progress=p.done)
                        status.update(f"{event.sample.profile}: {event.sample.prompt_id}")
                    elif isinstance(event, Finished):
                        await self.show(event.result)
        finally:
            if self.result is None:
                await self.show(bench.result())
            self.bench = None
            self.remove_class("-running")
            if self.restore is not None:
                self.restore()

    async def show(self, result: BenchResult) -> None:
        if result.samples:
            with BenchStore(app_paths().history_db) as store:
                result = replace(result, run_id=store.save(result))
        self.result = result
        await self.query_one("#report-md", Markdown).update(report.markdown(result))
        note = " (stopped early)" if result.interrupted else ""
        self.query_one("#status", Static).update(f"done{note}: {len(result.samples)} requests")

    def action_stop_or_back(self) -> None:
        if self.bench is not None:
            self.bench.cancel()
            self.notify("stopping after the request in flight")
        else:
            self.app.pop_screen()
