"""The footer of every screen: its main keys, as many as the width holds, never cut.

Textual's ``Footer`` lists the shown bindings in binding order and scrolls the rest out of sight;
at 80 columns that left ``f1 K▏^p paletteb``. ``KeyFooter`` ranks them (``ui/keys.py``: F1 first,
then a screen's own keys when it is not the chat, then the server keys), keeps what fits in the
width and shows it in rank order, each key once. F1 lists the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import events
from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Footer

from coder_tui.ui.keys import FOOTER_RANK, key_name

PALETTE_WIDTH = len(f"▏{key_name('ctrl+p')} palette")
"""``▏Ctrl+P palette``: the command palette's key, docked right."""
SCREEN_KEY_RANK = 0.5
"""A screen's own keys that the rank table does not know (Back, Export...): right after F1."""


@dataclass(frozen=True)
class FooterItem:
    """One key as the footer would show it."""

    key: str
    """As shown (``CoderApp.get_key_display``, as the help writes it): ``F2``, ``Ctrl+Q``."""
    description: str
    action: str


def fit_items(items: list[FooterItem], width: int) -> tuple[list[int], bool]:
    """The indexes of ``items`` that fit in ``width`` columns, in rank order (each key and each
    action once), and whether the command palette's key fits after them."""
    ranked: list[tuple[float, int]] = []
    for index, item in enumerate(items):
        bare = item.action.split("(")[0].removeprefix("app.").removeprefix("screen.")
        ranked.append((FOOTER_RANK.get(bare, SCREEN_KEY_RANK + index / 1000), index))
    ranked.sort()
    shown: list[int] = []
    seen: set[str] = set()
    used = 0
    for _rank, index in ranked:
        item = items[index]
        cost = len(item.key) + 1 + len(item.description) + 1
        if item.key in seen or item.action in seen or used + cost > width:
            continue
        used += cost
        seen.update((item.key, item.action))
        shown.append(index)
    return shown, used + PALETTE_WIDTH <= width


class KeyFooter(Footer):
    """A compact footer that keeps the most useful keys in the width it has."""

    def __init__(self) -> None:
        super().__init__(compact=True)
        self._width = 0

    def compose(self) -> ComposeResult:
        keys: list[Widget] = []
        palette: list[Widget] = []
        for widget in super().compose():  # Textual's footer keys, in binding order
            (palette if widget.has_class("-command-palette") else keys).append(widget)
        items = [
            FooterItem(
                str(getattr(w, "key_display", "")),
                str(getattr(w, "description", "")),
                str(getattr(w, "action", "")),
            )
            for w in keys
        ]
        shown, fits_palette = fit_items(items, self.size.width or self.app.size.width)
        yield from (keys[i] for i in shown)
        if fits_palette:
            yield from palette

    def on_resize(self, event: events.Resize) -> None:
        if event.size.width != self._width:
            self._width = event.size.width
            self.call_after_refresh(self.recompose)
