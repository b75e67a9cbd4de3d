"""Profiles for the App: the picker, the confirmed swap with its phases, and compare mode.

A mixin of ``CoderApp`` (``ui/app.py``); swapping itself is ``core/server/swap.py``'s.
"""

from __future__ import annotations

import asyncio

from textual import work

from coder_tui.core.config.loader import Profile
from coder_tui.core.gguf.profile_info import profile_info
from coder_tui.core.server.swap import SwapEvent, SwapProgress, SwapResult
from coder_tui.ui.app_base import AppBase
from coder_tui.ui.screens.confirm import ConfirmScreen
from coder_tui.ui.screens.profiles import ProfilesScreen, diff_text
from coder_tui.ui.widgets.server_bar import ServerBar
from coder_tui.ui.widgets.server_log import ServerLog


class SwapActions(AppBase):
    """F6 picker → confirm → swap; F7 compare."""

    def action_profiles(self) -> None:
        if self.config is None or self.manager is None:
            self.notify("attached to a server started elsewhere: no profiles to swap")
            return
        self._open_profiles()

    @work(exclusive=True, group="profiles", exit_on_error=False)
    async def _open_profiles(self) -> None:
        assert self.config is not None and self.manager is not None
        profiles = self.config.profiles
        infos = {n: await asyncio.to_thread(profile_info, p) for n, p in profiles.items()}
        speeds = {n: self.store.last_speed(n) if self.store else None for n in profiles}
        screen = ProfilesScreen(profiles, infos, self.manager.profile, speeds, self.load_times)
        self.push_screen(screen, self._swap_to)

    def _swap_to(self, name: str | None) -> None:
        if name is None or self.config is None or self.manager is None:
            return
        if self.main is not None and self.main.generating:
            self.notify("a reply is streaming: Esc cancels it, then swap", severity="warning")
            return
        target = self.config.profile(name)
        current = self.manager.profile if self.manager.running else None
        question = f"Swap to {name}?\n\n{diff_text(current, target)}"

        def answer(yes: bool | None) -> None:
            if yes:
                self._swap(target)

        self.push_screen(ConfirmScreen(question), answer)

    @work(group="swap", exit_on_error=False)
    async def _swap(self, profile: Profile) -> None:
        if self.swapper is None or self.main is None:
            return
        bar = self.main.query_one(ServerBar)

        def progress(event: SwapEvent) -> None:
            if isinstance(event, SwapProgress):
                bar.detail = f"swap → {event.profile_to}: {event.phase.value}"

        result = await self.swapper.swap(profile, on_event=progress)
        self.after_swap(result)

    def after_swap(self, result: SwapResult) -> None:
        """Show how a swap ended; the chat carries on with whatever now serves."""
        if self.main is None or self.config is None:
            return
        bar = self.main.query_one(ServerBar)
        if result.profile is not None:
            self.profile_name = result.profile
            self.main.profile = self.config.profile(result.profile)
            bar.profile = result.profile
        if result.unchanged:
            bar.detail = ""
            self.notify(f"{result.requested}: same flags as the running server, nothing to do")
        elif result.ok:
            bar.detail = ""
            self.notify(f"now serving {result.profile} ({result.total_s:.1f} s)")
        else:
            bar.detail = (result.error or "swap failed").splitlines()[0]
            self.main.query_one(ServerLog).add_lines(list(result.log_tail))
            self.notify(result.error or "swap failed", severity="error", timeout=15)

    def action_compare(self) -> None:
        if self.config is None or self.manager is None or self.swapper is None:
            self.notify("compare needs profiles that coder-tui manages")
            return
        if self.main is not None and self.main.generating:
            self.notify("a reply is streaming: Esc cancels it first", severity="warning")
            return
        from coder_tui.ui.screens.compare import CompareScreen

        prompt = self.main.last_prompt() if self.main is not None else ""
        self.push_screen(
            CompareScreen(
                self.config.profiles,
                self.swapper,
                self.manager,
                prompt=prompt,
                on_swap=self.after_swap,
            )
        )

    def action_bench(self) -> None:
        """F9: the benchmark, run through this app's server; the profile is restarted after."""
        if self.config is None or self.manager is None:
            self.notify("the bench needs profiles that coder-tui manages")
            return
        if self.main is not None and self.main.generating:
            self.notify("a reply is streaming: Esc cancels it first", severity="warning")
            return
        from coder_tui.ui.screens.bench import BenchScreen

        back_to = self.manager.profile if self.manager.running else None

        def restore() -> None:
            if back_to is not None and self.swapper is not None:
                self._swap(back_to)

        self.push_screen(BenchScreen(self.config, self.manager, restore=restore))
