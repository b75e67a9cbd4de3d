"""A one-line bar with the server's profile, state, endpoint and load time.

Renders only: its ``serving`` attribute is the App's serving state (``ui/serving.py``), bound from
the screen that holds the bar. While the server starts or loads, a once-a-second timer redraws the
time so far and the ETA (``load_progress``); it stops with the load."""

from __future__ import annotations

import time

from textual.content import Content
from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import Static

from coder_tui.core.sanitize import sanitize
from coder_tui.core.server.events import ServerState
from coder_tui.ui.serving import ServingState, load_progress

# Theme variable that colours each state (colours come from the theme, never literals).
_STATE_COLOUR = {
    ServerState.READY: "$success",
    ServerState.LOADING: "$warning",
    ServerState.STARTING: "$warning",
    ServerState.STOPPING: "$warning",
    ServerState.CRASHED: "$error",
    ServerState.UNREACHABLE: "$error",
    ServerState.STOPPED: "$text-muted",
}


class ServerBar(Static):
    """Profile, state, endpoint and load time of the server; set ``serving`` to update."""

    DEFAULT_CSS = """
    ServerBar { height: 1; padding: 0 1; background: $panel; }
    """

    serving: reactive[ServingState] = reactive(ServingState)
    _ticker: Timer | None = None

    def watch_serving(self, serving: ServingState) -> None:
        loading = serving.starting_since is not None
        if loading and self._ticker is None:
            self._ticker = self.set_interval(1.0, self.refresh)
        elif not loading and self._ticker is not None:
            self._ticker.stop()
            self._ticker = None

    def render(self) -> Content:
        serving = self.serving
        parts: list[str | tuple[str, str] | Content] = [
            (serving.label or "(no profile)", "bold"),
            "  ",
            (f"● {serving.state.value}", f"bold {_STATE_COLOUR[serving.state]}"),
        ]
        progress = load_progress(serving, time.time())
        if progress:
            parts.append(f" {progress}")
        if serving.url:
            parts.append(f"  {serving.url}")
        if serving.load_time_s is not None:
            parts.append(f"  loaded in {serving.load_time_s:.2f} s")
        if serving.detail:
            parts.append((f"  {sanitize(serving.detail)}", "italic $text-error"))
        return Content.assemble(*parts)
