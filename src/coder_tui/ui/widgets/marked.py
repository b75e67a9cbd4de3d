"""Check boxes whose state reads without colour: ``▐X▌`` when on, ``▐ ▌`` when off.

Textual's ``Checkbox`` and ``SelectionList`` draw the same ``X`` in both states and tell them apart
by colour alone, so on a monochrome terminal (or to a colour-blind reader) every box looks ticked.
These two draw the ``X`` only when the box is on; everything else is Textual's. Renders only.
"""

from __future__ import annotations

from rich.segment import Segment
from textual.content import Content
from textual.strip import Strip
from textual.widgets import Checkbox, SelectionList
from textual.widgets.option_list import OptionDoesNotExist

ON = Checkbox.BUTTON_INNER
OFF = " "


class MarkedCheckbox(Checkbox):
    """A ``Checkbox`` whose button is blank when unchecked."""

    def render(self) -> Content:
        self.BUTTON_INNER = ON if self.value else OFF
        return super().render()


class MarkedSelectionList(SelectionList[str]):
    """A ``SelectionList`` whose buttons are blank for the options not selected."""

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        try:
            option = self.get_option_at_index(self.scroll_offset.y + y)
        except OptionDoesNotExist:
            return strip
        if option.value in self.selected:
            return strip
        segments = list(strip)
        if len(segments) > 1 and segments[1].text == ON:
            segments[1] = Segment(OFF, segments[1].style, segments[1].control)
            return Strip(segments, strip.cell_length)
        return strip
