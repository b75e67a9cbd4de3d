"""A one-line bar with the server's profile, state, endpoint and load time."""

from __future__ import annotations

from textual.content import Content
from textual.reactive import reactive
from textual.widgets import Static

from coder_tui.core.sanitize import sanitize
from coder_tui.core.server.events import ServerState

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
    """Profile, state, endpoint and load time of the server; set its reactives to update."""

    DEFAULT_CSS = """
    ServerBar { height: 1; padding: 0 1; background: $panel; }
    """

    profile: reactive[str | None] = reactive(None)
    state: reactive[ServerState] = reactive(ServerState.STOPPED)
    url: reactive[str] = reactive("")
    load_time_s: reactive[float | None] = reactive(None)
    detail: reactive[str] = reactive("")

    def render(self) -> Content:
        parts: list[str | tuple[str, str] | Content] = [
            (self.profile or "(no profile)", "bold"),
            "  ",
            (f"● {self.state.value}", f"bold {_STATE_COLOUR[self.state]}"),
        ]
        if self.url:
            parts.append(f"  {self.url}")
        if self.load_time_s is not None:
            parts.append(f"  loaded in {self.load_time_s:.2f} s")
        if self.detail:
            parts.append((f"  {sanitize(self.detail)}", "italic $text-error"))
        return Content.assemble(*parts)
