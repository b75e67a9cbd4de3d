"""A screen that keeps the serving header (profile, state, endpoint) on top, as the chat does.

Owns ``ServingView``: the dashboard, compare and bench screens derive from it. Its ``serving`` is
the App's serving state, handed down: the App sets it whenever it changes (``watch_serving``)
and, when such a screen opens, answers its ``Wanted`` message with the current one. Renders only.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.events import Mount
from textual.message import Message
from textual.reactive import var
from textual.screen import Screen

from coder_tui.ui.serving import ServingState
from coder_tui.ui.widgets.server_bar import ServerBar


class ServingView(Screen[None]):
    """A screen with the serving header; ``serving`` is set by the App."""

    serving: var[ServingState] = var(ServingState)

    @dataclass
    class Wanted(Message):
        """A serving view opened: the App hands it the serving state."""

        view: ServingView

    def serving_bar(self) -> ServerBar:
        """The header, bound to this screen's ``serving``; yield it first in ``compose``."""
        return ServerBar(id="server-bar").data_bind(ServingView.serving)

    @on(Mount)
    def _want_serving(self) -> None:
        self.post_message(self.Wanted(self))
