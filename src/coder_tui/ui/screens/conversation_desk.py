"""The main screen's conversations: which one is open, switching, the tools and settings modals,
the context gauge, and the notices about the history and the model.

``ConversationDesk`` is a plain helper (no widget) that the main screen owns and hands those keys
to; the screen keeps the open conversation (``MainScreen.conversation``) and the chat turn. The
history itself is ``core/store`` (claims: ``owners.py``; edits and alternatives: ``turns.py``);
the token counts are ``core/chat/context.py``.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from textual.widgets import Static

from coder_tui.core.chat.client import ChatClient
from coder_tui.core.chat.code_blocks import last_code_block
from coder_tui.core.chat.context import ContextCounter, TooBig
from coder_tui.core.chat.session import asked_with, system_prompt
from coder_tui.core.errors import UserError
from coder_tui.core.sanitize import sanitize_line
from coder_tui.core.server.restart import interrupted_notice
from coder_tui.core.store.notices import other_model_notice, taken_notice
from coder_tui.core.store.schema import (
    Conversation,
    ConversationSettings,
    StoredMessage,
    settings_of,
)
from coder_tui.ui.keys import EMPTY_CHAT_HINT
from coder_tui.ui.screens.chat_settings import ChatSettingsScreen
from coder_tui.ui.screens.messages import MessagesScreen, ToolsDone
from coder_tui.ui.widgets.chat_view import ChatView
from coder_tui.ui.widgets.history_note import HistoryNote
from coder_tui.ui.widgets.prompt import PromptInput

if TYPE_CHECKING:
    from coder_tui.ui.screens.main import MainScreen


class ConversationDesk:
    """What the main screen does with whole conversations (not with one turn)."""

    def __init__(self, screen: MainScreen) -> None:
        self.screen = screen
        self.store = screen.store
        self._counters: dict[tuple[str, str | None], ContextCounter] = {}
        """Token counts of the stored messages, per server and model (their tokenizer)."""

    @property
    def chat(self) -> ChatView:
        return self.screen.query_one(ChatView)

    def _messages(self) -> list[StoredMessage]:
        conv = self.screen.conversation
        return self.store.messages(conv.id) if conv is not None else []

    def last_reply(self) -> StoredMessage | None:
        replies = [m for m in self._messages() if m.role == "assistant"]
        return replies[-1] if replies else None

    # -- opening -------------------------------------------------------------------------------
    async def start(self) -> None:
        """At the screen's mount: what became of the history, then the last conversation."""
        screen, store = self.screen, self.store
        for line in store.notices:  # a damaged history moved aside
            screen.notify(sanitize_line(line), severity="warning", timeout=20)
        if store.trouble is not None:
            await self.show_trouble(store.trouble)
        interrupted = store.mark_interrupted()
        await self.open(store.last_conversation(), at_start=True)
        self.chat.show_context(None, None)
        self.measure()
        notice = interrupted_notice(interrupted)
        if notice:
            screen.notify(notice, timeout=8)

    async def open(self, conv: Conversation | None, *, at_start: bool = False) -> None:
        """Show ``conv`` and open it here, unless another coder-tui has it open: then, at start,
        a new conversation begins instead (and says so), later the open one stays."""
        if conv is not None and (owner := self.store.claim(conv.id)) is not None:
            self.screen.notify(taken_notice(conv, owner, at_start=at_start), severity="warning")
            if not at_start:
                return
            conv = None
        self.screen.conversation = conv
        await self.reload()
        self.model_notice()

    async def reload(self) -> None:
        await self.chat.show_conversation(self._messages())
        await self.hint_if_empty()

    async def hint_if_empty(self) -> None:
        """An empty chat says what to do next (gone with the first prompt)."""
        transcript = self.chat.transcript
        if not transcript.children:
            await transcript.mount(Static(EMPTY_CHAT_HINT, id="empty-hint", markup=False))

    async def new(self) -> None:
        self.screen.conversation = None
        with contextlib.suppress(UserError):  # another instance may open the old one now
            self.store.release()
        await self.chat.show_conversation([])
        await self.hint_if_empty()
        self.screen.query_one(PromptInput).focus()
        self.measure()

    def choose(self) -> None:
        """Ctrl+L: the conversation list; the one picked opens."""
        from coder_tui.ui.screens.conversations import ConversationsScreen

        current = self.screen.conversation.id if self.screen.conversation else None
        self.screen.app.push_screen(ConversationsScreen(self.store, current), self._switch_to)

    async def _switch_to(self, conv_id: int | None) -> None:
        if conv_id is None:
            return
        await self.open(self.store.conversation(conv_id))
        self.screen.query_one(PromptInput).focus()
        self.measure()

    def model_notice(self) -> None:
        """Say so when the open conversation was written by another profile or model."""
        profile = self.screen.profile
        if self.screen.conversation is None or profile is None:
            return
        notice = other_model_notice(self._messages(), profile.name, profile.model.name)
        if notice:
            self.screen.notify(notice, timeout=10)

    async def show_trouble(self, line: str) -> None:
        """The history is no longer saved: say why once, and keep it in view above the prompt."""
        chat = self.chat
        if chat.query(HistoryNote):
            return
        line = sanitize_line(line)  # it names the file: a path may hold anything
        self.screen.notify(line, severity="error", timeout=20)
        await chat.mount(HistoryNote(line), before=chat.prompt)

    # -- the last prompt and reply -------------------------------------------------------------
    def last_prompt(self) -> str:
        prompts = [m for m in self._messages() if m.role == "user"]
        return prompts[-1].content if prompts else ""

    def retry(self) -> None:
        """Answer the last prompt again (the last reply is kept as an alternative)."""
        messages = self._messages()
        if not messages or not self.last_prompt():
            return
        last = messages[-1]
        self.screen.start_turn(None, replacing=last.id if last.role == "assistant" else None)

    def copy_code(self) -> None:
        reply = self.last_reply()
        code = last_code_block(reply.content) if reply else None
        if code is None:
            self.screen.notify("no code block in the last reply")
            return
        self.screen.app.copy_to_clipboard(code)
        self.screen.notify(f"copied {len(code.splitlines())} line(s) of code")

    def open_reply(self) -> None:
        """The last reply, whole, in a viewer (the chat draws a huge one folded)."""
        reply = self.last_reply()
        if reply is None or not reply.content:
            self.screen.notify("no reply to open")
            return
        from coder_tui.ui.screens.reply_viewer import ReplyViewer

        title = f"{reply.model or reply.profile or 'reply'} · Esc closes · Ctrl+B copies all"
        self.screen.app.push_screen(ReplyViewer(reply.content, title))

    # -- tools and settings --------------------------------------------------------------------
    def tools(self) -> None:
        """Ctrl+G: edit, delete, regenerate or flip the alternatives of the open conversation."""
        if self.screen.conversation is None:
            return
        screen = MessagesScreen(self.store, self.screen.conversation.id)
        self.screen.app.push_screen(screen, self._tools_done)

    async def _tools_done(self, done: ToolsDone | None) -> None:
        if done is None:
            return
        await self.reload()
        if done.action == "changed":
            self.measure()
        elif not self.screen.server_ready:
            self.screen.notify(
                "the server is not ready yet: Ctrl+R answers when it is", severity="warning"
            )
        else:
            replacing = done.message_id if done.action == "regenerate" else None
            self.screen.start_turn(None, replacing=replacing)

    def settings(self) -> None:
        """Ctrl+O: this conversation's system prompt and sampling settings."""
        conv = self.screen.conversation  # a chat not started yet: what its first prompt would use
        chat = self.screen.chat_settings
        current = (
            settings_of(conv)
            if conv
            else ConversationSettings(system_prompt(self.screen.profile, chat))
        )
        self.screen.app.push_screen(ChatSettingsScreen(current, chat), self._settings_done)

    def _settings_done(self, settings: ConversationSettings | None) -> None:
        if settings is None:
            return
        try:
            if self.screen.conversation is None:  # settings for the chat about to start
                self.screen.conversation = self.store.new_conversation()
            self.store.set_settings(self.screen.conversation.id, settings)
        except UserError as exc:
            self.screen.notify(str(exc), severity="error", timeout=15)
            return
        self.screen.conversation = self.store.conversation(self.screen.conversation.id)
        self.screen.notify("settings saved with this conversation")
        self.measure()

    # -- the context gauge ---------------------------------------------------------------------
    def counter(self) -> ContextCounter:
        """The token counter of the server and model the chat talks to now."""
        profile = self.screen.profile
        model = profile.model.name if profile is not None else None
        return self._counters.setdefault((self.screen.server_url, model), ContextCounter())

    def measure(self) -> None:
        """Count the open conversation against the server's context: the gauge, and the mark
        where the model's view starts, before the next message is sent."""
        screen = self.screen
        if screen.is_mounted and screen.server_ready and not screen.generating:
            screen.run_worker(
                self._measure(screen.conversation),
                exclusive=True,
                group="context",
                exit_on_error=False,
            )

    async def _measure(self, conversation: Conversation | None) -> None:
        chat, screen = self.chat, self.screen
        messages = self.store.messages(conversation.id) if conversation is not None else []
        system = conversation.system_prompt if conversation is not None else None
        reply_tokens = (  # the conversation's own max tokens, else the config's
            asked_with(conversation, screen.chat_settings).max_tokens
            if conversation is not None
            else screen.chat_settings.max_tokens
        )
        async with ChatClient(screen.server_url, screen.api_key) as client:
            plan = await self.counter().plan(client.http, system, messages, reply_tokens)
        if screen.generating or conversation is not screen.conversation:
            return  # a turn measures its own request
        chat.show_context(plan.tokens, plan.n_ctx)  # a last prompt too big: its size
        await chat.mark_view_start(None if isinstance(plan, TooBig) else plan.first_kept_id)
