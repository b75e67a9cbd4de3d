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
import itertools
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.reactive import var
from textual.screen import Screen
from textual.widgets import Static

from coder_tui.core.chat.client import ChatClient
from coder_tui.core.chat.code_blocks import last_code_block
from coder_tui.core.chat.context import ContextCounter, TooBig
from coder_tui.core.chat.pacing import BusyPace
from coder_tui.core.chat.session import ChatTurn, PromptSaved, asked_with, system_prompt
from coder_tui.core.config.loader import ChatSettings, Profile
from coder_tui.core.errors import UserError
from coder_tui.core.metrics.types import MetricsSnapshot
from coder_tui.core.sanitize import sanitize_line
from coder_tui.core.server.restart import interrupted_notice
from coder_tui.core.store.history import HistoryStore
from coder_tui.core.store.notices import other_model_notice, taken_notice
from coder_tui.core.store.schema import Conversation, ConversationSettings, settings_of
from coder_tui.ui.keys import EMPTY_CHAT_HINT
from coder_tui.ui.messages import ServerLogLines
from coder_tui.ui.screens.chat_settings import ChatSettingsScreen
from coder_tui.ui.screens.messages import MessagesScreen, ToolsDone
from coder_tui.ui.serving import RemoteChat, ServingState, not_ready_notice
from coder_tui.ui.widgets.chat_turn import TurnRenderer
from coder_tui.ui.widgets.chat_view import ChatView
from coder_tui.ui.widgets.history_note import HistoryNote, HistoryTrouble
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
        self._counters: dict[tuple[str, str | None], ContextCounter] = {}
        """Token counts of the stored messages, per server and model (their tokenizer)."""

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
        for line in self.store.notices:  # a damaged history moved aside
            self.notify(sanitize_line(line), severity="warning", timeout=20)
        if self.store.trouble is not None:
            await self.on_history_trouble(HistoryTrouble(self.store.trouble))
        interrupted = self.store.mark_interrupted()
        await self._open(self.store.last_conversation(), at_start=True)
        self.query_one(ChatView).show_context(None, None)
        self.measure_context()
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
            self.notify(
                not_ready_notice(self.serving) if self.remote is None else "the remote is down",
                severity="warning",
            )
            message.prompt_input.load_text(message.text)
            return
        self._start_turn(message.text)

    def _start_turn(self, prompt: str | None, replacing: int | None = None) -> None:
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
                profile=self.profile,
                conversation=self.conversation,
                prompt=prompt,
                pace=self.pace,
                counter=self._counter(),
                extra=self.request_extra,
                replacing=replacing,
            )
        )

    def watch_serving(self, old: ServingState, new: ServingState) -> None:
        if new.ready and not (old.ready and old.url == new.url and old.profile == new.profile):
            self.measure_context()
        if new.profile != old.profile:
            self._model_notice()

    def measure_context(self) -> None:
        """Count the open conversation against the server's context: the gauge, and the mark
        where the model's view starts, before the next message is sent."""
        if self.is_mounted and self.server_ready and not self.generating:
            self._measure(self.conversation)

    @work(exclusive=True, group="context", exit_on_error=False)
    async def _measure(self, conversation: Conversation | None) -> None:
        chat = self.query_one(ChatView)
        messages = self.store.messages(conversation.id) if conversation is not None else []
        system = conversation.system_prompt if conversation is not None else None
        reply_tokens = (  # the conversation's own max tokens, else the config's
            asked_with(conversation, self.chat_settings).max_tokens
            if conversation is not None
            else self.chat_settings.max_tokens
        )
        async with ChatClient(self.server_url, self.api_key) as client:
            plan = await self._counter().plan(client.http, system, messages, reply_tokens)
        if self.generating or conversation is not self.conversation:
            return  # a turn measures its own request
        chat.show_context(plan.tokens, plan.n_ctx)  # a last prompt too big: its size
        await chat.mark_view_start(None if isinstance(plan, TooBig) else plan.first_kept_id)

    def _counter(self) -> ContextCounter:
        """The token counter of the server and model the chat talks to now."""
        model = self.profile.model.name if self.profile is not None else None
        return self._counters.setdefault((self.server_url, model), ContextCounter())

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
            await self._reload()

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
        """Ctrl+R: answer the last prompt again (the last reply is kept as an alternative)."""
        if self.generating or not self.last_prompt() or self.conversation is None:
            return
        last = self.store.messages(self.conversation.id)[-1]
        self._start_turn(None, replacing=last.id if last.role == "assistant" else None)

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

    def action_open_reply(self) -> None:
        """The last reply, whole, in a viewer (the chat draws a huge one folded)."""
        if self.conversation is None:
            return
        replies = [m for m in self.store.messages(self.conversation.id) if m.role == "assistant"]
        if not replies or not replies[-1].content:
            self.notify("no reply to open")
            return
        from coder_tui.ui.screens.reply_viewer import ReplyViewer

        reply = replies[-1]
        title = f"{reply.model or reply.profile or 'reply'} · Esc closes · Ctrl+B copies all"
        self.app.push_screen(ReplyViewer(reply.content, title))

    async def action_new_conversation(self) -> None:
        if self.generating:
            return
        self.conversation = None
        with contextlib.suppress(UserError):  # another instance may open the old one now
            self.store.release()
        await self.query_one(ChatView).show_conversation([])
        await self._hint_if_empty()
        self.query_one(PromptInput).focus()
        self.measure_context()

    def action_conversations(self) -> None:
        if self.generating:
            return
        from coder_tui.ui.screens.conversations import ConversationsScreen

        current = self.conversation.id if self.conversation else None
        self.app.push_screen(ConversationsScreen(self.store, current), self._switch_to)

    async def _switch_to(self, conv_id: int | None) -> None:
        if conv_id is None:
            return
        await self._open(self.store.conversation(conv_id))
        self.query_one(PromptInput).focus()
        self.measure_context()

    # -- conversation tools (history: core/store/turns.py, owners.py) ----------------------------
    async def _open(self, conv: Conversation | None, *, at_start: bool = False) -> None:
        """Show ``conv`` and open it here, unless another coder-tui has it open: then, at start,
        a new conversation begins instead (and says so), later the open one stays."""
        if conv is not None and (owner := self.store.claim(conv.id)) is not None:
            self.notify(taken_notice(conv, owner, at_start=at_start), severity="warning")
            if not at_start:
                return
            conv = None
        self.conversation = conv
        await self._reload()
        self._model_notice()

    async def _reload(self) -> None:
        conv = self.conversation
        await self.query_one(ChatView).show_conversation(
            self.store.messages(conv.id) if conv is not None else []
        )
        await self._hint_if_empty()

    async def _hint_if_empty(self) -> None:
        """An empty chat says what to do next (gone with the first prompt)."""
        transcript = self.query_one(ChatView).transcript
        if not transcript.children:
            await transcript.mount(Static(EMPTY_CHAT_HINT, id="empty-hint", markup=False))

    def _model_notice(self) -> None:
        """Say so when the open conversation was written by another profile or model."""
        if self.conversation is None or self.profile is None:
            return
        notice = other_model_notice(
            self.store.messages(self.conversation.id), self.profile.name, self.profile.model.name
        )
        if notice:
            self.notify(notice, timeout=10)

    def _history_trouble(self, line: str) -> None:
        self.post_message(HistoryTrouble(line))

    async def on_history_trouble(self, message: HistoryTrouble) -> None:
        """The history is no longer saved: say why once, and keep it in view above the prompt."""
        chat = self.query_one(ChatView)
        if chat.query(HistoryNote):
            return
        line = sanitize_line(message.line)  # it names the file: a path may hold anything
        self.notify(line, severity="error", timeout=20)
        await chat.mount(HistoryNote(line), before=chat.prompt)

    def action_messages(self) -> None:
        """Ctrl+G: edit, delete, regenerate or flip the alternatives of the open conversation."""
        if self.generating or self.conversation is None:
            return
        self.app.push_screen(MessagesScreen(self.store, self.conversation.id), self._tools_done)

    async def _tools_done(self, done: ToolsDone | None) -> None:
        if done is None:
            return
        await self._reload()
        if done.action == "changed":
            self.measure_context()
        elif not self.server_ready:
            self.notify(
                "the server is not ready yet: Ctrl+R answers when it is", severity="warning"
            )
        else:
            self._start_turn(
                None, replacing=done.message_id if done.action == "regenerate" else None
            )

    def action_chat_settings(self) -> None:
        """Ctrl+O: this conversation's system prompt and sampling settings."""
        if self.generating:
            return
        conv = self.conversation  # a chat not started yet: what its first prompt would use
        current = settings_of(conv) if conv else ConversationSettings(self._new_system_prompt())
        self.app.push_screen(ChatSettingsScreen(current, self.chat_settings), self._settings_done)

    def _new_system_prompt(self) -> str | None:
        return system_prompt(self.profile, self.chat_settings)

    def _settings_done(self, settings: ConversationSettings | None) -> None:
        if settings is None:
            return
        try:
            if self.conversation is None:  # settings for the chat about to start
                self.conversation = self.store.new_conversation()
            self.store.set_settings(self.conversation.id, settings)
        except UserError as exc:
            self.notify(str(exc), severity="error", timeout=15)
            return
        self.conversation = self.store.conversation(self.conversation.id)
        self.notify("settings saved with this conversation")
        self.measure_context()
