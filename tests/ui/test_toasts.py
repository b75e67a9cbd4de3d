"""Which notifications show as toasts (``ui/toasts.py``): the newest that fit, in order."""

from __future__ import annotations

from textual.geometry import Size
from textual.notifications import Notification

from coder_tui.ui.toasts import fitting, toast_rows

PATH = "exported to /home/someone/.local/share/coder-tui/exports/2-hello-second-chat.md"


def test_a_long_path_wraps_and_counts_its_rows() -> None:
    short = Notification("started q4_k_m", "", "information", 5)
    long = Notification(PATH, "", "information", 5)
    assert toast_rows(short, Size(80, 24)) == 1 + 3
    assert toast_rows(long, Size(80, 24)) == 3 + 3  # 37 columns: "exported to", the path in 2
    assert toast_rows(long, Size(200, 60)) == 3 + 3  # 57 columns: "exported to", then the path
    assert toast_rows(Notification(PATH, "Export", "information", 5), Size(80, 24)) == 7


def test_the_newest_that_fit_in_order_and_the_newest_always() -> None:
    notes = [Notification(f"{PATH} {i}", "", "information", 30) for i in range(6)]
    shown = list(fitting(notes, Size(80, 24)))
    assert shown == notes[-3:]  # 3 x 7 rows fit under the rack's margin at 24; 4 would not
    assert list(fitting(notes, Size(200, 60))) == notes  # 6 x 6 rows
    assert list(fitting(notes, Size(80, 5))) == notes[-1:]  # too tall: the newest all the same
    assert list(fitting([], Size(80, 24))) == []
