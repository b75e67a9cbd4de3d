"""Rows held under streaming text, so that it grows without a layout per update.

Textual lays the screen out again whenever a widget's content may change its size
(``Static.update`` asks for a layout by default), and each layout that resizes a widget asks for a
second one (``virtual_size`` is a layout reactive) and repaints whatever moved. A streaming reply
grows a line every update or two, so it paid two layouts and two or three frames per update.

``quiet_virtual_size`` takes the second layout away from widgets that never scroll (the streaming
text and the message around it): their virtual size only matters to scrollbars they don't have,
and the layout that resized them has already placed everything.

``GrowingStatic`` shows open (still growing) text: the open paragraph of a reply
(``StreamParagraph``). While ``hold`` is set, its height is its text's plus ``hold`` spare rows,
kept until the text outgrows them (``held_height``, which ``CodeLines`` uses too): most updates
then repaint the widget alone, and one update in a few takes another ``hold`` rows with one
layout. ``release`` gives the spare rows back when the text is finished. Who sets ``hold``
(``ReplyStream``) decides how many rows; this module only keeps them.
"""

from __future__ import annotations

from textual.geometry import Size
from textual.reactive import Reactive
from textual.visual import VisualType
from textual.widgets import Static


def held_height(natural: int, hold: int, held: int) -> int:
    """Rows to hold for text of ``natural`` rows that holds ``held`` now (0: hold none).

    What it holds, or once the text outgrows that, its height plus another ``hold`` rows.
    """
    if not hold:
        return 0
    return held if natural <= held else natural + hold


def quiet_virtual_size() -> Reactive[Size]:
    """``Widget.virtual_size`` without its layout and repaint, for a class that never scrolls.

    Textual sets ``virtual_size`` on every widget that a layout resized, and as a layout reactive
    it asks for another layout of the screen and a repaint, one frame later. A widget that doesn't
    scroll has no use for either: the layout that resized it has placed and repainted it.
    """
    return Reactive(Size(0, 0), layout=False, repaint=False)


class GrowingStatic(Static):
    """A ``Static`` that keeps ``hold`` spare rows under its text while the text grows.

    Used as it is (a fence's streaming chunk) or as the second base of a ``Static`` subclass
    (``StreamParagraph``). With ``hold`` at 0 it is a plain ``Static``.
    """

    virtual_size = quiet_virtual_size()

    hold: int = 0
    """Spare rows to take each time the text outgrows its height (0: plain ``height: auto``)."""
    _held_height: int = 0
    """Content height given to the layout while holding (text plus the spare rows left)."""

    def update(self, content: VisualType = "", *, layout: bool = True) -> None:
        if not self.is_mounted:
            # Mounting lays the parent out, this widget included. Asking for a layout here too
            # makes a second one: the request reaches the screen a frame after the mount's.
            super().update(content, layout=False)
            return
        if not self.hold:
            super().update(content, layout=layout)
            return
        super().update(content, layout=False)
        if not self.fits():
            self.refresh(layout=True)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        height = super().get_content_height(container, viewport, width)
        self._held_height = held_height(height, self.hold, self._held_height)
        return self._held_height or height

    def fits(self) -> bool:
        """Whether the text fits the rows the widget has now, so that a repaint will do."""
        width, height = self.size
        if not width or not self.hold:
            return False
        return super().get_content_height(self.size, self.app.size, width) <= height

    def release(self) -> None:
        """The text is finished: give the spare rows back (at the next layout)."""
        if self.hold:
            self.hold = 0
            self.refresh(layout=True)
