"""The open conversation's messages in a modal, to edit, delete, regenerate or flip alternatives.

Owns ``MessagesScreen``: a list of the messages as sent (each reply with its profile, quant and
``alternative i/n``); ``e`` edits a prompt (Ctrl+S resends from there: what came after it is
removed), ``d`` deletes a message, ``t`` its whole turn, ``g`` regenerates a reply (the earlier
answer is kept as an alternative), ←/→ show another alternative. Deletes and flips are stored
here at once; a resend or a regenerate is handed back (``ToolsDone``) for the main screen to
start the turn. A refused change (another coder-tui has the conversation open, the history
cannot be written) is one line in the modal. The store does the work (``core/store/turns.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static, TextArea
from textual.widgets.option_list import Option

from coder_tui.core.errors import UserError
from coder_tui.core.sanitize import sanitize_line
from coder_tui.core.store.history import HistoryStore, StoredMessage

PREVIEW_CHARS = 70


@dataclass(frozen=True)
class ToolsDone:
    """How the modal closed: ``changed`` (reload the chat), ``resend`` (answer the edited
    prompt) or ``regenerate`` (answer reply ``message_id``'s prompt again)."""

    action: Literal["changed", "resend", "regenerate"]
    message_id: int | None = None


def message_label(msg: StoredMessage) -> str:
    """One line for a message: who, for a reply its quant and alternative, then its start."""
    first = next((ln for ln in msg.content.splitlines() if ln.strip()), "")
    text = sanitize_line(first[:PREVIEW_CHARS]) or "(empty)"
    if msg.role == "user":
        return f"you: {text}"
    who = " · ".join(b for b in (msg.profile, msg.quant) if b) or "model"
    alt = f" · {msg.alternative}/{msg.alternatives}" if msg.alternatives > 1 else ""
    return f"{sanitize_line(who)}{alt}: {text}"


class MessagesScreen(ModalScreen[ToolsDone | None]):
    """Pick a message of conversation ``conv_id`` and act on it."""

    DEFAULT_CSS = """
    MessagesScreen { align: center middle; }
    MessagesScreen > Vertical {
        width: 90%; max-width: 110; height: 80%; border: round $accent; background: $surface;
    }
    MessagesScreen OptionList { height: 1fr; }
    MessagesScreen TextArea { height: 1fr; display: none; }
    MessagesScreen TextArea.-visible { display: block; }
    MessagesScreen #error { color: $error; height: auto; }
    MessagesScreen .keys { color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("e", "edit", "Edit"),
        Binding("d", "delete", "Delete"),
        Binding("t", "delete_turn", "Delete turn"),
        Binding("g", "regenerate", "Regenerate"),
        Binding("left", "alternative(-1)", "Prev alt"),
        Binding("right", "alternative(1)", "Next alt"),
        Binding("ctrl+s", "save", "Resend", show=False, priority=True),
    ]

    def __init__(self, store: HistoryStore, conv_id: int) -> None:
        super().__init__()
        self.store = store
        self.conv_id = conv_id
        self.changed = False
        self.messages: list[StoredMessage] = []
        self._editing: int | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(
                "messages  (e edit · d delete · t delete turn · g regenerate · ←/→ alternatives)",
                classes="keys",
            )
            yield OptionList(id="messages")
            yield TextArea(id="edit", soft_wrap=True)
            yield Static("", id="error", markup=False)

    def on_mount(self) -> None:
        self._refresh()
        self.query_one(OptionList).focus()

    def _refresh(self, keep: int | None = None) -> None:
        options = self.query_one(OptionList)
        self.messages = [m for m in self.store.messages(self.conv_id) if m.role != "system"]
        options.clear_options()
        options.add_options(
            [Option(Content(message_label(m)), id=str(m.id)) for m in self.messages]
        )
        if self.messages:
            ids = [m.id for m in self.messages]
            options.highlighted = ids.index(keep) if keep in ids else len(ids) - 1

    def selected(self) -> StoredMessage | None:
        index = self.query_one(OptionList).highlighted
        return self.messages[index] if index is not None and index < len(self.messages) else None

    def _say(self, text: str) -> None:
        self.query_one("#error", Static).update(text)

    def _store(self, change: str, msg: StoredMessage) -> bool:
        """Run one change of the store; a refusal is one line here."""
        try:
            if change == "delete":
                self.store.delete_message(msg.id)
            elif change == "turn":
                self.store.delete_turn(msg.id)
        except UserError as exc:
            self._say(str(exc))
            return False
        self.changed = True
        return True

    def action_close(self) -> None:
        area = self.query_one(TextArea)
        if area.has_class("-visible"):
            area.remove_class("-visible")
            self._editing = None
            self.query_one(OptionList).focus()
            return
        self.dismiss(ToolsDone("changed") if self.changed else None)

    def action_delete(self) -> None:
        msg = self.selected()
        if msg is not None and self._store("delete", msg):
            self._refresh()

    def action_delete_turn(self) -> None:
        msg = self.selected()
        if msg is not None and self._store("turn", msg):
            self._refresh()

    def action_alternative(self, step: int) -> None:
        msg = self.selected()
        if msg is None or msg.alternatives < 2:
            return
        alts = self.store.alternatives(msg.id)
        pick = alts[(msg.alternative - 1 + step) % len(alts)]
        try:
            self.store.choose_alternative(pick.id)
        except UserError as exc:
            self._say(str(exc))
            return
        self.changed = True
        self._refresh(keep=pick.id)

    def action_regenerate(self) -> None:
        msg = self.selected()
        if msg is None or msg.role != "assistant":
            self._say("pick a reply to regenerate (a prompt: e edits and resends it)")
            return
        self.dismiss(ToolsDone("regenerate", msg.id))

    def action_edit(self) -> None:
        msg = self.selected()
        if msg is None or msg.role != "user":
            self._say("only a prompt can be edited")
            return
        self._editing = msg.id
        area = self.query_one(TextArea)
        area.load_text(msg.content)
        area.add_class("-visible")
        area.focus()
        self._say("Ctrl+S resends from this prompt (what came after it is removed) · Esc cancels")

    def action_save(self) -> None:
        if self._editing is None:
            return
        text = self.query_one(TextArea).text
        if not text.strip():
            self._say("an empty prompt cannot be sent")
            return
        try:
            self.store.edit_message(self._editing, text)
        except UserError as exc:
            self._say(str(exc))
            return
        self.dismiss(ToolsDone("resend", self._editing))
