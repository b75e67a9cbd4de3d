"""The Connect panel: the lines that point a coding agent at the running server (F8).

The same lines as ``coder-tui env``: OpenAI-style and Anthropic-style base URLs and key variables.
``c`` copies them (OSC 52, which works over SSH).
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static, TextArea

from coder_tui.core.server.agent_env import env_lines
from coder_tui.ui.serving import ServingState
from coder_tui.ui.widgets.key_footer import KeyFooter


class ConnectScreen(ModalScreen[None]):
    """Shows ``lines``; ``c`` copies them, Esc closes."""

    DEFAULT_CSS = """
    ConnectScreen { align: center middle; }
    ConnectScreen > Vertical {
        width: 90%; max-width: 110; height: auto; border: round $accent; background: $surface;
        padding: 0 1;
    }
    ConnectScreen TextArea { height: 10; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f8", "app.pop_screen", "Close"),
        Binding("c", "copy", "Copy"),
    ]

    def __init__(self, lines: list[str], title: str) -> None:
        super().__init__()
        self.lines = lines
        self.title_text = title

    @classmethod
    def for_serving(cls, serving: ServingState, key_env: str | None = None) -> ConnectScreen:
        """The lines for the served server (same as ``coder-tui env``); ``key_env`` is
        ``[server] api_key_env``, the key the server checks."""
        url, profile = serving.url, serving.profile
        model = profile.model.stem if profile else None
        title = f"Connect a coding agent to {url}" + (f" ({profile.name})" if profile else "")
        return cls(env_lines(url, model, key_env), title)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.title_text, markup=False)
            yield TextArea("\n".join(self.lines), read_only=True, id="lines")
            yield Static("paste these into the shell of your coding agent · c copies")
        yield KeyFooter()

    def action_copy(self) -> None:
        self.app.copy_to_clipboard("\n".join(self.lines) + "\n")
        self.notify("copied")
