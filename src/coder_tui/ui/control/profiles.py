"""Profiles for the App: the picker (F6), the confirmed swap, compare mode (F7) and the bench (F9).

Owns ``ProfileSwitch``, handed the config, the server manager, the swapper and the history store.
Swapping itself is ``core/server/swap.py``'s; every swap event (progress, end) goes to the App as
a ``SwapReport``, and ``after_swap_event`` says what it does to the serving state and what the
App shows for an ended swap. Also keeps the load time of each profile started in this session
(the picker shows them, with each profile's last speed looked up by its identity,
``core/config/identity.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from textual.app import App
from textual.notifications import SeverityLevel
from textual.worker import Worker

from coder_tui.core.config.identity import profile_identity
from coder_tui.core.config.loader import Config, Profile
from coder_tui.core.gguf.profile_info import profile_info
from coder_tui.core.server.process import ServerManager
from coder_tui.core.server.swap import SwapEvent, Swapper, SwapProgress, SwapResult
from coder_tui.core.store.history import HistoryStore
from coder_tui.ui.messages import SwapReport
from coder_tui.ui.screens.confirm import ConfirmScreen
from coder_tui.ui.screens.profiles import ProfilesScreen, diff_text
from coder_tui.ui.serving import ServingState


@dataclass(frozen=True)
class SwapOutcome:
    """What the App shows for an ended swap."""

    detail: str
    """For the server bar (``""``: nothing to say)."""
    notice: str
    severity: SeverityLevel = "information"
    log_lines: tuple[str, ...] = ()
    """For the server log: the failed start's last lines."""

    @property
    def timeout_s(self) -> float | None:
        """How long the notice stays (``None``: Textual's default)."""
        return 15.0 if self.severity == "error" else None


def after_swap_event(
    serving: ServingState, event: SwapEvent, profiles: Mapping[str, Profile]
) -> tuple[ServingState, SwapOutcome | None]:
    """The serving state after a swap's ``event``, and what to show if the swap ended."""
    if isinstance(event, SwapProgress):
        return replace(serving, detail=f"swap → {event.profile_to}: {event.phase.value}"), None
    outcome = swap_outcome(event)
    profile = profiles.get(event.profile or "", serving.profile)
    return replace(serving, profile=profile, detail=outcome.detail), outcome


def swap_outcome(result: SwapResult) -> SwapOutcome:
    if result.unchanged:
        return SwapOutcome(
            "", f"{result.requested}: same flags as the running server, nothing to do"
        )
    if result.ok:
        return SwapOutcome("", f"now serving {result.profile} ({result.total_s:.1f} s)")
    error = result.error or "swap failed"
    return SwapOutcome(error.splitlines()[0], error, "error", tuple(result.log_tail))


class ProfileSwitch:
    """F6 picker → confirm → swap; F7 compare; F9 bench; none while a reply streams."""

    def __init__(
        self,
        app: App[Any],
        config: Config,
        manager: ServerManager,
        swapper: Swapper,
        store: HistoryStore | None,
        *,
        chat_busy: Callable[[], bool],
    ) -> None:
        self.app = app
        self.config = config
        self.manager = manager
        self.swapper = swapper
        self.store = store
        self.chat_busy = chat_busy
        """A reply is streaming (it is cancelled with Esc before a swap, compare or bench)."""
        self.load_times: dict[str, float] = {}
        """Seconds from spawn to ready of each profile started in this session, by name: one
        app runs one config, so a name is one model file and set of flags here (speeds, kept
        across sessions and configs, go by identity instead: ``last_speeds``)."""

    def pick(self, current: Profile | None) -> Worker[None]:
        """Open the picker (its infos read the GGUF files in a thread); Enter asks to swap."""
        return self.app.run_worker(
            partial(self._open_picker, current),
            group="profiles",
            exclusive=True,
            exit_on_error=False,
        )

    async def _open_picker(self, current: Profile | None) -> None:
        profiles = self.config.profiles
        infos = {n: await asyncio.to_thread(profile_info, p) for n, p in profiles.items()}
        speeds = await asyncio.to_thread(self.last_speeds)
        screen = ProfilesScreen(profiles, infos, current, speeds, self.load_times)
        self.app.push_screen(screen, self.confirm)

    def last_speeds(self) -> dict[str, float | None]:
        """Each profile's last generation speed, by its identity (model file and flags): never
        that of another config's profile of the same name, nor of this one with other flags."""
        store = self.store
        return {
            name: store.last_speed(profile_identity(p)) if store else None
            for name, p in self.config.profiles.items()
        }

    def confirm(self, name: str | None) -> None:
        """Ask whether to swap to profile ``name`` (showing what changes), then swap."""
        if name is None:
            return
        if self.chat_busy():
            self.app.notify("a reply is streaming: Esc cancels it, then swap", severity="warning")
            return
        target = self.config.profile(name)
        current = self.manager.profile if self.manager.running else None
        question = f"Swap to {name}?\n\n{diff_text(current, target)}"

        def answer(yes: bool | None) -> None:
            if yes:
                self.swap(target)

        self.app.push_screen(ConfirmScreen(question), answer)

    def swap(self, profile: Profile) -> Worker[SwapResult]:
        """Swap to ``profile``; its progress and its end come to the App as ``SwapReport``."""
        return self.app.run_worker(
            partial(self.swapper.swap, profile, self._report), group="swap", exit_on_error=False
        )

    def _report(self, event: SwapEvent) -> None:
        self.app.post_message(SwapReport(event))

    def compare(self, prompt: str, a: str | None = None, b: str | None = None) -> None:
        """Open compare mode with ``a`` and ``b`` selected (``None``: its defaults); on compare
        mode already, select them there instead of opening a second one."""
        from coder_tui.ui.screens.compare import CompareScreen  # on first use: a faster start

        if isinstance(self.app.screen, CompareScreen):
            self.app.screen.choose(a, b)
            return
        if self.chat_busy():
            self.app.notify("a reply is streaming: Esc cancels it first", severity="warning")
            return
        self.app.push_screen(
            CompareScreen(
                self.config.profiles,
                self.swapper,
                self.manager,
                prompt=prompt,
                on_swap=self._report,
                a=a,
                b=b,
            )
        )

    def bench(self) -> None:
        """The benchmark, run through this app's server; the profile that served is swapped back."""
        if self.chat_busy():
            self.app.notify("a reply is streaming: Esc cancels it first", severity="warning")
            return
        from coder_tui.ui.screens.bench import BenchScreen  # on first use: a faster start

        back_to = self.manager.profile if self.manager.running else None

        def restore() -> None:
            if back_to is not None:
                self.swap(back_to)

        self.app.push_screen(BenchScreen(self.config, self.manager, restore=restore))
