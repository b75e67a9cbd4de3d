"""Compare mode: the same prompt on two profiles, replies side by side with their numbers.

The screen is handed the swapper and the server manager (services stay the App's); its worker
iterates ``core.compare.run_compare`` and renders what comes: progress, each run, the result table
with deltas, and the unified diff of the two replies (Ctrl+T). Ctrl+S exports Markdown.

The setup takes three rows at any width (the prompt; A and B; runs, fixed length and Run), so Run
is on screen at 80x24, Enter in the prompt runs, and Tab goes from the prompt through A, B and the
options to Run; below ``NARROW`` columns the replies stack A over B. The screen's keys work with
the focus anywhere, the prompt included (see ``BINDINGS``); A and B can come preselected (the
palette's "Compare A vs B"), and ``choose`` sets them on a screen already open.
Requests use the bench's settings (``types.DEFAULT_*``: fixed length by default).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.events import Resize
from textual.widgets import (
    Button,
    DataTable,
    Input,
    Label,
    Markdown,
    Select,
    Static,
)

from coder_tui.core.atomic import write_text_atomic
from coder_tui.core.bench.compare import (
    METRICS,
    CompareFailed,
    CompareProgress,
    CompareResult,
    CompareRun,
    Stat,
    run_compare,
    to_markdown,
    unified_diff,
)
from coder_tui.core.bench.compare_store import as_bench_result, save_compare
from coder_tui.core.bench.types import DEFAULT_FIXED_LENGTH, DEFAULT_MAX_TOKENS
from coder_tui.core.config.loader import Profile
from coder_tui.core.paths import app_paths
from coder_tui.core.sanitize import sanitize
from coder_tui.core.server.process import ServerManager
from coder_tui.core.server.swap import Swapper, SwapResult
from coder_tui.ui.keys import SCREEN, KeyLine
from coder_tui.ui.screens.serving_view import ServingView
from coder_tui.ui.widgets.key_footer import KeyFooter
from coder_tui.ui.widgets.marked import MarkedCheckbox


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _with_spread(s: Stat) -> str:
    return _num(s.mean) + (f" ± {s.stdev:.2f}" if s.n > 1 and s.stdev is not None else "")


NARROW = 100
"""Below this many columns the two replies stack (A over B) instead of standing side by side."""


class CompareScreen(ServingView):
    """Pick A, B, a prompt and a repeat count; run; read the replies and the deltas."""

    DEFAULT_CSS = """
    CompareScreen #setup { height: auto; padding: 0 1; }
    CompareScreen #setup > Horizontal { height: 1; }
    CompareScreen #setup Select { width: 1fr; max-width: 40; }
    CompareScreen #setup #repeats { width: 6; }
    CompareScreen #setup #fixed { margin: 0 2; }
    CompareScreen #prompt-in { width: 1fr; }
    CompareScreen #status { height: auto; padding: 0 1; color: $text-muted; }
    CompareScreen #numbers { height: auto; max-height: 8; }
    CompareScreen #replies { height: 1fr; }
    CompareScreen #replies > VerticalScroll { width: 1fr; border: round $panel-lighten-2; }
    CompareScreen.-stacked #replies { layout: vertical; }
    CompareScreen.-stacked #replies > VerticalScroll { width: 1fr; height: 1fr; }
    CompareScreen #diff { display: none; height: 1fr; border: round $accent; }
    CompareScreen.-diff #diff { display: block; }
    CompareScreen.-diff #replies { display: none; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        # Esc never cancels a compare mid-swap (that left no server): it stops between steps.
        Binding(
            "escape",
            "stop_or_back",
            "Stop / back",
            tooltip="stop the compare after the step in flight, else leave compare mode",
        ),
        # Keys no widget here takes, and priority so none ever does: Ctrl+D and Ctrl+E were
        # swallowed by the prompt (delete right, end of line), which keeps them for editing.
        Binding(
            "ctrl+t",
            "toggle_diff",
            "Diff",
            priority=True,
            tooltip="the diff of the two replies (again: the replies)",
        ),
        Binding(
            "ctrl+s", "export", "Export", priority=True, tooltip="export the result as Markdown"
        ),
    ]
    TYPED_KEYS: ClassVar[tuple[KeyLine, ...]] = (
        KeyLine(SCREEN, ("Enter",), "run", "in the prompt: run the compare (Tab reaches Run)"),
    )
    """Keys read by a widget, not bindings, that the help lists (``ui/screens/help.py``)."""

    def __init__(
        self,
        profiles: Mapping[str, Profile],
        swapper: Swapper,
        manager: ServerManager,
        *,
        prompt: str = "",
        on_swap: Callable[[SwapResult], None] | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        a: str | None = None,
        b: str | None = None,
    ) -> None:
        """``a`` and ``b`` preselect the profiles (default: the one serving, then another)."""
        super().__init__()
        self.profiles = profiles
        self.chosen = (a, b)
        self.swapper = swapper
        self.manager = manager
        self.initial_prompt = prompt
        self.on_swap = on_swap
        self.max_tokens = max_tokens
        self.result: CompareResult | None = None
        self.running = False
        """A compare is on its way (Enter and Run wait for it; Esc stops it)."""
        self.stopping = False
        """Esc asked it to stop after the step in flight."""
        self.saved_run_id: int | None = None

    def compose(self) -> ComposeResult:
        names = list(self.profiles)
        current = self.manager.profile_name or (names[0] if names else None)
        a, b = self.chosen
        current = a if a in self.profiles else current
        other = b if b in self.profiles else next((n for n in names if n != current), current)
        options = [(n, n) for n in names]
        yield self.serving_bar()
        with Vertical(id="setup"):
            # The prompt first: Enter runs from it, and Tab goes on to A, B, runs and Run.
            yield Input(
                self.initial_prompt,
                placeholder="prompt (Enter runs)",
                id="prompt-in",
                compact=True,
            )
            with Horizontal(id="pick"):
                yield Label("A ")
                yield Select(
                    options, value=current or Select.BLANK, id="a", allow_blank=False, compact=True
                )
                yield Label(" B ")
                yield Select(
                    options, value=other or Select.BLANK, id="b", allow_blank=False, compact=True
                )
            with Horizontal(id="options"):
                yield Label("runs ")
                yield Input("1", id="repeats", type="integer", compact=True)
                yield MarkedCheckbox(
                    f"fixed length ({self.max_tokens} tokens)",
                    DEFAULT_FIXED_LENGTH,
                    id="fixed",
                    compact=True,
                )
                yield Button("Run", id="run", variant="primary", compact=True)
        yield Static("", id="status", markup=False)
        yield DataTable(id="numbers", cursor_type="none")
        with Horizontal(id="replies"):
            with VerticalScroll(id="col-a"):
                yield Markdown("", id="reply-a")
            with VerticalScroll(id="col-b"):
                yield Markdown("", id="reply-b")
        with VerticalScroll(id="diff"):
            yield Static("", id="diff-text", markup=False)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("metric", "A", "B", "delta")
        self.query_one("#prompt-in", Input).focus()
        self.set_class(self.size.width < NARROW, "-stacked")

    def on_resize(self, event: Resize) -> None:
        self.set_class(event.size.width < NARROW, "-stacked")

    def choose(self, a: str | None, b: str | None) -> None:
        """Select ``a`` and ``b`` (the names of profiles; ``None`` keeps that side) and put the
        focus in the prompt, from which Enter runs."""
        for side, name in (("#a", a), ("#b", b)):
            if name in self.profiles:
                self.query_one(side, Select).value = name
        self.query_one("#prompt-in", Input).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "run":
            self.start()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.start()

    def start(self) -> None:
        a = self.query_one("#a", Select).value
        b = self.query_one("#b", Select).value
        prompt = self.query_one("#prompt-in", Input).value.strip()
        repeats_text = self.query_one("#repeats", Input).value or "1"
        if self.running:
            self.notify("a compare is running: Esc stops it", severity="warning")
            return
        if not isinstance(a, str) or not isinstance(b, str) or not prompt:
            self.notify("choose two profiles and write a prompt", severity="warning")
            return
        repeats = max(1, min(20, int(repeats_text)))
        fixed = self.query_one("#fixed", MarkedCheckbox).value
        self._run(self.profiles[a], self.profiles[b], prompt, repeats, fixed)

    @work(exclusive=True, group="compare", exit_on_error=False)
    async def _run(self, a: Profile, b: Profile, prompt: str, repeats: int, fixed: bool) -> None:
        self.running, self.stopping = True, False
        try:
            await self._compare(a, b, prompt, repeats, fixed)
        finally:
            self.running = self.stopping = False

    async def _compare(
        self, a: Profile, b: Profile, prompt: str, repeats: int, fixed: bool
    ) -> None:
        status = self.query_one("#status", Static)
        for md in (self.query_one("#reply-a", Markdown), self.query_one("#reply-b", Markdown)):
            await md.update("")
        self.query_one(DataTable).clear()
        return_to = self.profiles.get(self.manager.profile_name or "")
        started = time.time()
        finished = False
        ended = "stopped"  # what the status says if no result comes
        events = run_compare(
            self.swapper,
            self.manager,
            a,
            b,
            prompt,
            repeats=repeats,
            max_tokens=self.max_tokens,
            fixed_length=fixed,
            return_to=return_to,
            on_swap=self.on_swap,
        )
        async for event in events:
            if isinstance(event, CompareProgress):
                status.update(sanitize(f"[{event.step}/{event.steps}] {event.message}"))
            elif isinstance(event, CompareRun):
                target = "#reply-a" if event.profile == a.name else "#reply-b"
                await self.query_one(target, Markdown).update(sanitize(event.text))
            elif isinstance(event, CompareFailed):
                ended = event.message
                status.update(sanitize(event.message))
                self.notify(sanitize(event.message), severity="error")
            elif isinstance(event, CompareResult):
                finished = True
                self.show_result(event)
                bench = as_bench_result(
                    event,
                    dict(self.profiles),
                    max_tokens=self.max_tokens,
                    llama_server_version=self.manager.version,
                    started_at=started,
                )
                run_id = await asyncio.to_thread(save_compare, app_paths().history_db, bench)
                self.saved_run_id = run_id
                status.update(
                    f"done: {a.name} vs {b.name}, {repeats} run(s) each; saved as bench run "
                    f"#{run_id} (coder-tui bench show {run_id})"
                )
            if self.stopping and not finished:
                break  # at a step's end: no swap or request is cut off (none holds resources)
        if finished:
            return
        if return_to is not None and self.manager.profile_name != return_to.name:
            # Stopped or failed on the way: serve again what served before (a finished compare
            # has done it already).
            status.update(sanitize(f"{ended}; switching back to {return_to.name}"))
            swap = await self.swapper.swap(return_to)
            if self.on_swap is not None:
                self.on_swap(swap)
            if not swap.ok:
                ended += f"; could not switch back to {return_to.name}: {swap.error}"
        now = f"serving {self.manager.profile_name}" if self.manager.running else "no server"
        status.update(sanitize(f"{ended} ({a.name} vs {b.name} not finished); {now}"))

    def show_result(self, result: CompareResult) -> None:
        self.result = result
        table = self.query_one(DataTable)
        table.clear()
        for key, label in METRICS:
            sa, sb, _ = result.stats(key)
            table.add_row(label, _with_spread(sa), _with_spread(sb), result.delta_text(key))
        last_a = result.runs_a[-1].text if result.runs_a else ""
        last_b = result.runs_b[-1].text if result.runs_b else ""
        diff = unified_diff(last_a, last_b, result.a, result.b)
        self.query_one("#diff-text", Static).update(sanitize(diff) or "(the replies are identical)")

    def action_stop_or_back(self) -> None:
        if not self.running:
            self.app.pop_screen()
            return
        self.stopping = True
        self.notify("stopping after the step in flight, then back to the profile that served")

    def action_toggle_diff(self) -> None:
        self.toggle_class("-diff")

    def action_export(self) -> None:
        if self.result is None:
            self.notify("nothing to export yet")
            return
        r = self.result
        path = app_paths().data_dir / "exports" / f"compare-{r.a}-vs-{r.b}.md"
        write_text_atomic(path, to_markdown(r))
        self.notify(f"exported to {path}")
