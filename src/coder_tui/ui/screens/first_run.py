"""The first run without a config: run the demo, write a starter config, or make profiles.

Shown by the App when it opens with no config (``coder-tui`` on a fresh machine). Says where the
config goes and what each choice does (``core/config/starter.py``'s ``FirstRunOffer``); the
choice (``demo``, ``example``, ``models``) is handed back and ``commands.tui`` carries it out
once the app has closed: the demo opens the TUI on its own config, the models' config opens the
TUI on it, the starter config is written for editing.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from coder_tui.core.config.starter import FirstRunOffer
from coder_tui.core.sanitize import sanitize_line

CHOICES = ("demo", "example", "models")


class FirstRunScreen(ModalScreen[str | None]):
    """Dismisses with ``demo``, ``example``, ``models`` or ``None`` (quit)."""

    DEFAULT_CSS = """
    FirstRunScreen { align: center middle; }
    FirstRunScreen > Vertical {
        width: 90%; max-width: 100; height: auto; border: round $accent; background: $surface;
        padding: 0 1;
    }
    FirstRunScreen OptionList { height: auto; margin: 1 0; }
    FirstRunScreen .hint { color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "choose(0)", "Demo"),
        Binding("2", "choose(1)", "Starter config"),
        Binding("3", "choose(2)", "From models"),
        Binding("escape,q", "quit_first_run", "Quit"),
    ]

    def __init__(self, offer: FirstRunOffer) -> None:
        super().__init__()
        self.offer = offer

    def compose(self) -> ComposeResult:
        box = Vertical()
        box.border_title = "coder-tui: first run"
        with box:
            yield Static(
                Content(f"No config yet at {sanitize_line(str(self.offer.config_path))}. To start:")
            )
            options = [
                Option(f"{i}) {sanitize_line(line)}", id=CHOICES[i - 1], disabled=disabled)
                for i, (line, disabled) in enumerate(
                    zip(self.offer.lines(), (False, False, not self.offer.models), strict=True),
                    1,
                )
            ]
            yield OptionList(*options, id="choices")
            yield Static(
                "Enter or 1-3 chooses · q quits · the config file is yours: coder-tui never "
                "rewrites it",
                classes="hint",
            )

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_choose(self, index: int) -> None:
        if index == 2 and not self.offer.models:
            self.notify("no GGUF files found: try the demo or the starter config")
            return
        self.dismiss(CHOICES[index])

    def action_quit_first_run(self) -> None:
        self.dismiss(None)
