"""The main screen: server bar, the coding chat, and live tiles and the server log beside it.

Owns the chat's keys and its on-screen state (the open conversation, whether a reply is on its
way, the prompt's cursor blink). A chat turn (saving the prompt, the request, pacing, saving the
reply) is ``core/chat/session.py``'s ``ChatTurn``: this screen starts one in a worker, iterates its
events and hands them to ``TurnRenderer`` (``ui/widgets/chat_turn.py``), which draws them. The App
owns the services (server, history store) and sets this screen's server attributes; the screen
never starts or stops the server itself.
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.reactive import var
from textual.screen import Screen
from textual.widgets import Footer

from coder_tui.core.chat.code_blocks import last_code_block
from coder_tui.core.chat.pacing import BusyPace
from coder_tui.core.chat.session import ChatTurn, PromptSaved
from coder_tui.core.config.loader import ChatSettings, Profile
from coder_tui.core.metrics.types import MetricsSnapshot
from coder_tui.core.server.restart import interrupted_notice
from coder_tui.core.store.history import HistoryStore
from coder_tui.core.store.schema import Conversation
from coder_tui.ui.messages import ServerLogLines
from coder_tui.ui.serving import RemoteChat, ServingState
from coder_tui.ui.widgets.chat_turn import TurnRenderer
from coder_tui.ui.widgets.chat_view import ChatView
from coder_tui.ui.widgets.dashboard import Dashboard, MetricsStrip
from coder_tui.ui.widgets.prompt import PromptInput
from coder_tui.ui.widgets.server_bar import ServerBar
from coder_tui.ui.widgets.server_log import ServerLog


class MainScreen(Screen[None]):
    """Server state on top, chat on the left, server log on the right (hidden when narrow)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+b", "copy_code", "Copy code"),
        Binding("ctrl+l", "conversations", "Chats"),
        Binding("ctrl+r", "retry", "Retry", show=False),
        Binding("ctrl+n", "new_conversation", "New chat", show=False),
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
        yield Footer(compact=True)

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

    def offer_progress(self, snap: MetricsSnapshot) -> None:
        """Hand the sampler's ``/slots`` read to a quiet reply, so it asks nothing itself (called
        for every snapshot, whichever screen shows)."""
        server = snap.server
        if self._renderer is not None and server is not None and server.slots_available:
            self._renderer.offer_slots(server.slots)

    async def on_mount(self) -> None:
        self.query_one(PromptInput).focus()
        interrupted = self.store.mark_interrupted()
        self.conversation = self.store.last_conversation()
        if self.conversation is not None:
            await self.query_one(ChatView).show_conversation(
                self.store.messages(self.conversation.id)
            )
        notice = interrupted_notice(interrupted)
        if notice:
            self.notify(notice, timeout=8)

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
            self.notify("the server is not ready yet", severity="warning")
            message.prompt_input.load_text(message.text)
            return
        self._start_turn(message.text)

    def _start_turn(self, prompt: str | None) -> None:
        """A turn with the screen's server and settings, run in the chat worker."""
        self._busy = True
        self._reply(
            ChatTurn(
                self.store,
                self.chat_settings,
                server_url=self.server_url,
                api_key=self.api_key,
                profile=self.profile,
                conversation=self.conversation,
                prompt=prompt,
                pace=self.pace,
                extra=self.request_extra,
            )
        )

    @work(exclusive=True, group="chat", exit_on_error=False)
    async def _reply(self, turn: ChatTurn) -> None:
        self._renderer = renderer = TurnRenderer(self.query_one(ChatView), turn)
        try:
            async with contextlib.aclosing(renderer.run()) as events:
                async for event in events:
                    if isinstance(event, PromptSaved):
                        self.conversation = event.conversation
        finally:
            self._renderer = None
            self._busy = False

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
        if self.conversation is None:
            return ""
        prompts = [m for m in self.store.messages(self.conversation.id) if m.role == "user"]
        return prompts[-1].content if prompts else ""

    # -- actions -------------------------------------------------------------------------------
    def action_cancel(self) -> None:
        if self._renderer is not None:
            self._renderer.turn.cancel()

    def action_retry(self) -> None:
        if not self.generating and self.last_prompt():
            self._start_turn(None)

    def action_copy_code(self) -> None:
        if self.conversation is None:
            return
        replies = [m for m in self.store.messages(self.conversation.id) if m.role == "assistant"]
        code = last_code_block(replies[-1].content) if replies else None
        if code is None:
            self.notify("no code block in the last reply")
            return
        self.app.copy_to_clipboard(code)
        self.notify(f"copied {len(code.splitlines())} line(s) of code")

    async def action_new_conversation(self) -> None:
        if self.generating:
            return
        self.conversation = None
        await self.query_one(ChatView).show_conversation([])
        self.query_one(PromptInput).focus()

    def action_conversations(self) -> None:
        if self.generating:
            return
        from coder_tui.ui.screens.conversations import ConversationsScreen

        current = self.conversation.id if self.conversation else None
        self.app.push_screen(ConversationsScreen(self.store, current), self._switch_to)

    async def _switch_to(self, conv_id: int | None) -> None:
        if conv_id is None:
            return
        self.conversation = self.store.conversation(conv_id)
        messages = self.store.messages(conv_id) if self.conversation else []
        await self.query_one(ChatView).show_conversation(messages)
        self.query_one(PromptInput).focus()
