"""Which notifications show as toasts: the newest that fit the screen's height.

The app's toast rack sits at the top right, clear of the prompt (``app.tcss``), and grows down,
newest last; Textual mounts a toast for every live notification, so at 80x24 the fourth export's
toast (a long path wraps to several rows) ran off the bottom edge: its path cut, or not shown at
all. ``fitting`` keeps the newest toasts whose heights add up to the rows there are; older ones
give way (they expire on their own time, as they would have). ``CoderApp`` hands its rack only
these (``_refresh_notifications``).
"""

from __future__ import annotations

from collections.abc import Iterable

from textual.content import Content
from textual.geometry import Size
from textual.notifications import Notification, Notifications

TOAST_WIDTH = 60
"""Textual's toast width (``Toast { width: 60; max-width: 50% }``)."""
TOAST_CHROME_ROWS = 3
"""Rows a toast takes besides its text: padding above and below, and its margin."""
TOAST_CHROME_COLUMNS = 3
"""Columns a toast takes besides its text: padding left and right, and its coloured edge."""
RACK_MARGIN_ROWS = 1
"""The rack's own margin above (``app.tcss``)."""


def toast_rows(notification: Notification, screen: Size) -> int:
    """The rows ``notification``'s toast takes on a screen of ``screen``'s size."""
    width = max(1, min(TOAST_WIDTH, screen.width // 2) - TOAST_CHROME_COLUMNS)
    message = notification.message
    content = Content.from_markup(message) if notification.markup else Content(message)
    rows = len(content.wrap(width))
    if notification.title:
        rows += len(Content(notification.title).wrap(width))
    return rows + TOAST_CHROME_ROWS


def fitting(notifications: Iterable[Notification], screen: Size) -> Notifications:
    """The newest of ``notifications`` (oldest first, as Textual keeps them) whose toasts fit
    ``screen``'s height, in the same order; the newest always, however tall."""
    rows = screen.height - RACK_MARGIN_ROWS
    kept: list[Notification] = []
    for notification in reversed(list(notifications)):
        rows -= toast_rows(notification, screen)
        if kept and rows < 0:
            break
        kept.append(notification)
    shown = Notifications()
    for notification in reversed(kept):
        shown.add(notification)
    return shown
