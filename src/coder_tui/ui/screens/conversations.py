"""The conversation list: open, start, rename, delete and export conversations."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from coder_tui.core.atomic import write_text_atomic
from coder_tui.core.paths import app_paths
from coder_tui.core.sanitize import sanitize
from coder_tui.core.store.history import HistoryStore


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
    ConversationsScreen Input { display: none; }
    ConversationsScreen Input.-visible { display: block; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("n", "new", "New"),
        Binding("r", "rename", "Rename"),
        Binding("d", "delete", "Delete"),
        Binding("e", "export", "Export"),
    ]

    def __init__(self, store: HistoryStore, current: int | None) -> None:
        super().__init__()
        self.store = store
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("conversations  (Enter open · n new · r rename · d delete · e export)")
            yield OptionList(id="list")
            yield Input(placeholder="new title, Enter to save", id="title")
        yield Footer()

    def on_mount(self) -> None:
        self._refresh()
        self.query_one(OptionList).focus()

    def _refresh(self) -> None:
        options = self.query_one(OptionList)
        options.clear_options()
        for conv in self.store.list_conversations():
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(conv.updated_at))
            mark = "▶ " if conv.id == self.current else "  "
            options.add_option(Option(f"{mark}{sanitize(conv.title)}  ({when})", id=str(conv.id)))
        if options.option_count:
            options.highlighted = 0

    def _selected(self) -> int | None:
        options = self.query_one(OptionList)
        if options.highlighted is None:
            return None
        option = options.get_option_at_index(options.highlighted)
        return int(option.id) if option.id else None

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int(event.option.id) if event.option.id else None)

    def action_close(self) -> None:
        title = self.query_one(Input)
        if title.has_class("-visible"):
            title.remove_class("-visible")
            self.query_one(OptionList).focus()
            return
        self.dismiss(None)

    def action_new(self) -> None:
        self.dismiss(self.store.new_conversation().id)

    def action_delete(self) -> None:
        conv_id = self._selected()
        if conv_id is not None:
            self.store.delete(conv_id)
            self.notify("conversation deleted")
            self._refresh()

    def action_rename(self) -> None:
        if self._selected() is None:
            return
        title = self.query_one(Input)
        title.add_class("-visible")
        title.value = ""
        title.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        conv_id = self._selected()
        if conv_id is not None and event.value.strip():
            self.store.rename(conv_id, event.value.strip())
        event.input.remove_class("-visible")
        self._refresh()
        self.query_one(OptionList).focus()

    def action_export(self) -> None:
        conv_id = self._selected()
        conv = self.store.conversation(conv_id) if conv_id is not None else None
        if conv is None:
            return
        path = export_path(conv.title, conv.id)
        write_text_atomic(path, self.store.export_markdown(conv.id))
        self.notify(f"exported to {path}")
