"""The conversation list: search, open, start, rename, delete and export conversations.

The search box on top filters as one types (titles and message text, SQLite FTS5 through
``HistoryStore.search``), each hit with the matching words in context. A change the store
refuses (another coder-tui has the conversation open, the disk is full) is one line.
"""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from coder_tui.core.atomic import write_text_atomic
from coder_tui.core.errors import UserError
from coder_tui.core.paths import app_paths
from coder_tui.core.sanitize import sanitize, sanitize_line, show_path
from coder_tui.core.store.history import Conversation, HistoryStore
from coder_tui.ui.widgets.key_footer import KeyFooter


def export_path(title: str, conv_id: int, directory: Path | None = None) -> Path:
    """Where a conversation's Markdown export goes: data dir ``exports/<id>-<slug>.md``."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower()[:40] or "conversation"
    return (directory or app_paths().data_dir / "exports") / f"{conv_id}-{slug}.md"


class ConversationsScreen(ModalScreen[int | None]):
    """Pick a conversation (dismisses with its id) or manage them in place."""

    DEFAULT_CSS = """
    ConversationsScreen { align: center middle; }
    ConversationsScreen > Vertical {
        width: 80%; max-width: 100; height: 80%; border: round $accent; background: $surface;
    }
    ConversationsScreen OptionList { height: 1fr; }
    ConversationsScreen #title { display: none; }
    ConversationsScreen #title.-visible { display: block; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("n", "new", "New"),
        Binding("r", "rename", "Rename"),
        Binding("d", "delete", "Delete"),
        Binding("e", "export", "Export"),
        Binding("slash", "search", "Search"),
    ]

    def __init__(self, store: HistoryStore, current: int | None) -> None:
        super().__init__()
        self.store = store
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(
                "conversations  (Enter open · / search · n new · r rename · d delete · e export)"
            )
            yield Input(placeholder="search titles and text (/)", id="search")
            yield OptionList(id="list")
            yield Input(placeholder="new title, Enter to save", id="title")
        yield KeyFooter()

    def on_mount(self) -> None:
        self._refresh()
        self.query_one(OptionList).focus()

    def _label(self, conv: Conversation, snippet: str = "") -> Content:
        """Plain text, never markup: a title or a snippet may hold ``[``."""
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(conv.updated_at))
        mark = "▶ " if conv.id == self.current else "  "
        line = f"{mark}{sanitize(conv.title)}  ({when})"
        return Content(f"{line}\n    {sanitize_line(snippet)}" if snippet else line)

    def _refresh(self) -> None:
        options = self.query_one(OptionList)
        options.clear_options()
        query = self.query_one("#search", Input).value
        if query.strip():
            hits = self.store.search(query)
            options.add_options(
                [
                    Option(self._label(h.conversation, h.snippet), id=str(h.conversation.id))
                    for h in hits
                ]
            )
        else:
            options.add_options(
                [Option(self._label(c), id=str(c.id)) for c in self.store.list_conversations()]
            )
        if options.option_count:
            options.highlighted = 0

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "search":
            self._refresh()

    def action_search(self) -> None:
        self.query_one("#search", Input).focus()

    def _selected(self) -> int | None:
        options = self.query_one(OptionList)
        if options.highlighted is None:
            return None
        option = options.get_option_at_index(options.highlighted)
        return int(option.id) if option.id else None

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int(event.option.id) if event.option.id else None)

    def action_close(self) -> None:
        search = self.query_one("#search", Input)
        if search.has_focus and search.value:
            search.value = ""
            return
        title = self.query_one("#title", Input)
        if title.has_class("-visible"):
            title.remove_class("-visible")
            self.query_one(OptionList).focus()
            return
        self.dismiss(None)

    def action_new(self) -> None:
        try:
            self.dismiss(self.store.new_conversation().id)
        except UserError as exc:
            self.notify(str(exc), severity="error")

    def action_delete(self) -> None:
        conv_id = self._selected()
        if conv_id is None:
            return
        try:
            self.store.delete(conv_id)
        except UserError as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify("conversation deleted")
        self._refresh()

    def action_rename(self) -> None:
        if self._selected() is None:
            return
        title = self.query_one("#title", Input)
        title.add_class("-visible")
        title.value = ""
        title.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "search":
            self.query_one(OptionList).focus()
            return
        conv_id = self._selected()
        if conv_id is not None and event.value.strip():
            try:
                self.store.rename(conv_id, event.value.strip())
            except UserError as exc:
                self.notify(str(exc), severity="error")
        event.input.remove_class("-visible")
        self._refresh()
        self.query_one(OptionList).focus()

    def action_export(self) -> None:
        conv_id = self._selected()
        conv = self.store.conversation(conv_id) if conv_id is not None else None
        if conv is None:
            return
        text = self.store.export_markdown(conv.id)
        path = export_path(conv.title, conv.id)
        try:
            write_text_atomic(path, text)
        except OSError as exc:  # the data folder's disk is full or read-only: the temp folder
            why = f"cannot export to {show_path(path)} ({exc.strerror or exc})"
            path = export_path(conv.title, conv.id, Path(tempfile.gettempdir()))
            try:
                write_text_atomic(path, text)
            except OSError as again:
                self.notify(f"{why}, nor to {show_path(path)}: {again.strerror}", severity="error")
                return
            self.notify(f"{why}; exported to {show_path(path)}", severity="warning")
            return
        self.notify(f"exported to {show_path(path)}")
