"""The main screen: server bar, the coding chat, and live tiles and the server log beside it.

Owns the chat's keys and its on-screen state (the open conversation, whether a reply is on its
way, the prompt's cursor blink). What is done with whole conversations (open, switch, the tools
and settings modals, the context gauge) is ``ConversationDesk``'s (``conversation_desk.py``).
A chat turn (saving the prompt, the request, pacing, saving the reply) is
``core/chat/session.py``'s ``ChatTurn``: this screen starts one in a worker, iterates its events
and hands them to ``TurnRenderer`` (``ui/widgets/chat_turn.py``), which draws them. The App owns
the services (server, history store) and sets this screen's server attributes; the screen never
starts or stops the server itself.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.reactive import var
from textual.screen import Screen

from coder_tui.core.chat.pacing import BusyPace
from coder_tui.core.chat.session import ChatTurn
from coder_tui.core.chat.turn_events import PromptSaved
from coder_tui.core.config.loader import ChatSettings, Profile
from coder_tui.core.errors import UserError
from coder_tui.core.metrics.types import MetricsSnapshot
from coder_tui.core.store.history import HistoryStore
from coder_tui.core.store.schema import Conversation
from coder_tui.ui.messages import ServerLogLines
from coder_tui.ui.screens.conversation_desk import ConversationDesk
from coder_tui.ui.serving import RemoteChat, ServingState, not_ready_notice
from coder_tui.ui.widgets.chat_turn import TurnRenderer
from coder_tui.ui.widgets.chat_view import ChatView
from coder_tui.ui.widgets.history_note import HistoryTrouble
from coder_tui.ui.widgets.key_footer import KeyFooter
from coder_tui.ui.widgets.prompt import PromptInput
from coder_tui.ui.widgets.server_bar import ServerBar
from coder_tui.ui.widgets.server_log import ServerLog
from coder_tui.ui.widgets.tile_grid import Dashboard, MetricsStrip


class MainScreen(Screen[None]):
    """Server state on top, chat on the left, server log on the right (hidden when narrow)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+b", "copy_code", "Copy code"),
        Binding("ctrl+t", "open_reply", "Reply whole", show=False),
        Binding("ctrl+l", "conversations", "Chats"),
        Binding("ctrl+r", "retry", "Retry", show=False),
        Binding("ctrl+n", "new_conversation", "New chat", show=False),
        Binding(
            "ctrl+g",
            "messages",
            "Messages",
            show=False,
            tooltip="edit and resend, delete, regenerate a message",
        ),
        Binding(
            "ctrl+o",
            "chat_settings",
            "Settings",
            show=False,
            tooltip="this chat's system prompt and sampling",
        ),
    ]

    serving: var[ServingState] = var(ServingState)
    """What the App serves (set by the App; the server bar is bound to it)."""

    def __init__(self, store: HistoryStore, chat: ChatSettings, api_key: str | None = None) -> None:
        super().__init__()
        self.store = store
        self.chat_settings = chat
        self.local_api_key = api_key
        """The key for this machine's server (``api_key`` is a remote's while chatting with it)."""
        self.remote: RemoteChat | None = None
        """The remote server the chat talks to instead of the served one (set by the App)."""
        self.conversation: Conversation | None = None
        self._renderer: TurnRenderer | None = None
        """The turn whose reply is on its way, as it is drawn."""
        self._busy = False
        self.request_extra: dict[str, Any] = {}
        """Extra request fields for every reply (tests use ``ignore_eos`` for long replies)."""
        self.pace = BusyPace(chat.busy_refresh_s)
        """How busy the cores are, across turns (each turn paces its reply by it)."""
        self.cpu_saturated = False
        """No CPU core is idle (set by the app from the host samples): the cursor stops blinking."""
        self.desk = ConversationDesk(self)
        """Opening, switching and editing conversations; the context gauge."""

    @property
    def profile(self) -> Profile | None:
        """The served profile (from the App's serving state)."""
        return self.serving.profile

    @property
    def server_url(self) -> str:
        """Where the chat sends requests: the chosen remote, else the served server."""
        return self.remote.url if self.remote else self.serving.url

    @property
    def api_key(self) -> str | None:
        return self.remote.api_key if self.remote else self.local_api_key

    @property
    def server_ready(self) -> bool:
        return self.remote.ready if self.remote else self.serving.ready

    def compose(self) -> ComposeResult:
        yield ServerBar(id="server-bar").data_bind(MainScreen.serving)
        yield MetricsStrip(id="strip")
        with Horizontal(id="body"):
            yield ChatView(id="chat")
            with Vertical(id="side"):
                yield Dashboard(compact=True, id="tiles")
                yield ServerLog(id="server-log")
        yield KeyFooter()

    @on(ServerLogLines)
    def _show_log_lines(self, message: ServerLogLines) -> None:
        self.query_one(ServerLog).add_lines(message.lines)

    def show_metrics(self, snap: MetricsSnapshot) -> None:
        """Update the tiles (wide) or the strip (narrow); the hidden one is left alone."""
        try:
            wide = self.query_one("#side").display
            target: Dashboard | MetricsStrip = (
                self.query_one(Dashboard) if wide else self.query_one(MetricsStrip)
            )
        except NoMatches:  # a snapshot that arrives while the app closes and the screen empties
            return
        target.show(snap)

    async def on_mount(self) -> None:
        self.query_one(PromptInput).focus()
        self.store.on_trouble = self._history_trouble  # from any thread: posts a message
        await self.desk.start()

    # -- chat ----------------------------------------------------------------------------------
    @property
    def generating(self) -> bool:
        """A reply is on its way (from the moment it is asked for until it is saved)."""
        return self._busy

    def on_prompt_input_submitted(self, message: PromptInput.Submitted) -> None:
        if self.generating:
            self.notify("a reply is still streaming: Esc cancels it", severity="warning")
            message.prompt_input.load_text(message.text)
            return
        if not self.server_ready:
            self.notify(
                not_ready_notice(self.serving) if self.remote is None else "the remote is down",
                severity="warning",
            )
            message.prompt_input.load_text(message.text)
            return
        self.start_turn(message.text)

    def start_turn(self, prompt: str | None, replacing: int | None = None) -> None:
        """A turn with the screen's server and settings, run in the chat worker (``replacing``:
        a reply answered again, kept as an alternative)."""
        self.query("#empty-hint").remove()
        self._busy = True
        self._reply(
            ChatTurn(
                self.store,
                self.chat_settings,
                server_url=self.server_url,
                api_key=self.api_key,
                # A remote's reply is no local profile's: not stored under its name or speed.
                profile=self.profile if self.remote is None else None,
                conversation=self.conversation,
                prompt=prompt,
                pace=self.pace,
                counter=self.desk.counter(),
                extra=self.request_extra,
                replacing=replacing,
            )
        )

    def watch_serving(self, old: ServingState, new: ServingState) -> None:
        if new.ready and not (old.ready and old.url == new.url and old.profile == new.profile):
            self.measure_context()
        if new.profile != old.profile:
            self.desk.model_notice()

    def measure_context(self) -> None:
        """The context gauge and the model's view, counted again (``ConversationDesk.measure``)."""
        self.desk.measure()

    @work(exclusive=True, group="chat", exit_on_error=False)
    async def _reply(self, turn: ChatTurn) -> None:
        chat = self.query_one(ChatView)
        self._renderer = renderer = TurnRenderer(chat, turn)
        replacing = turn.replacing is not None and turn.conversation is not None
        if replacing:  # the new answer streams where the old one was; the rest comes back after
            assert turn.conversation is not None
            shown = self.store.messages(turn.conversation.id)
            await chat.show_conversation(
                itertools.takewhile(lambda m: m.id != turn.replacing, shown)
            )
        try:
            async with contextlib.aclosing(renderer.run()) as events:
                async for event in events:
                    if isinstance(event, PromptSaved):
                        self.conversation = event.conversation
        except UserError as exc:  # the history refused (another coder-tui has it open)
            self.notify(str(exc), severity="error", timeout=15)
            if turn.prompt is not None and not chat.prompt.text:
                chat.prompt.load_text(turn.prompt)
        finally:
            self._renderer = None
            self._busy = False
        if replacing:
            await self.desk.reload()

    def sync_cursor_blink(self) -> None:
        """No cursor blink while no CPU core is idle (``cpu_saturated``, set by the App)."""
        self._hold_blink("cpu", self.cpu_saturated)

    def _hold_blink(self, reason: str, held: bool) -> None:
        with contextlib.suppress(NoMatches):  # the screen is closing
            self.query_one(PromptInput).hold_blink(reason, held)

    def on_screen_suspend(self) -> None:
        self._hold_blink("hidden", True)  # its timer would run on under another screen

    def on_screen_resume(self) -> None:
        self._hold_blink("hidden", False)

    def last_prompt(self) -> str:
        """The newest prompt of the open conversation (compare mode starts from it)."""
        return self.desk.last_prompt()

    # -- actions -------------------------------------------------------------------------------
    def action_cancel(self) -> None:
        if self._renderer is not None:
            self._renderer.turn.cancel()

    def action_retry(self) -> None:
        """Ctrl+R: answer the last prompt again (the last reply is kept as an alternative)."""
        if not self.generating:
            self.desk.retry()

    def action_copy_code(self) -> None:
        self.desk.copy_code()

    def action_open_reply(self) -> None:
        self.desk.open_reply()

    async def action_new_conversation(self) -> None:
        if not self.generating:
            await self.desk.new()

    def action_conversations(self) -> None:
        if not self.generating:
            self.desk.choose()

    def action_messages(self) -> None:
        if not self.generating:
            self.desk.tools()

    def action_chat_settings(self) -> None:
        if not self.generating:
            self.desk.settings()

    def _history_trouble(self, line: str) -> None:
        self.post_message(HistoryTrouble(line))  # from any thread

    async def on_history_trouble(self, message: HistoryTrouble) -> None:
        await self.desk.show_trouble(message.line)
