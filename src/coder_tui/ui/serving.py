"""The serving state: what the App serves (or watches), as one frozen record.

``CoderApp`` owns the one ``ServingState`` and is the only one to change it: from the server's
events (``after_event``), a swap's reports and a failed start. Screens and widgets receive it as an
attribute (``MainScreen.serving``, bound into ``ServerBar.serving``) and keep no copy of any part
of it. ``RemoteChat`` is where the chat talks instead of the served server (the fleet view's
Enter); it changes where replies come from, not what is served. Knows nothing of Textual.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from coder_tui.core.config.loader import Profile
from coder_tui.core.server.events import Exited, Ready, ServerEvent, ServerState, StateChanged

ATTACHED = "attached"
"""What the server bar names a server that coder-tui watches but did not start."""


@dataclass(frozen=True)
class ServingState:
    """The served server as the App knows it: profile, address, state and what to say about it."""

    profile: Profile | None = None
    """The profile that serves, or that Start (F2) starts; ``None`` when attached from the start
    (after falling back to attach, the profile that was asked for)."""
    url: str = ""
    """The served server's base URL (``""`` until the App knows it)."""
    state: ServerState = ServerState.STOPPED
    load_time_s: float | None = None
    """Spawn to ready of the last start (``0`` when attached)."""
    detail: str = ""
    """Said after the rest: the last failure, or the phase of a swap (``""``: nothing to say)."""
    attached: bool = False
    """Watching a server started elsewhere: coder-tui neither starts nor stops it."""
    starting_since: float | None = None
    """Wall-clock time the server began starting (``None`` unless starting or loading)."""
    expected_load_s: float | None = None
    """How long this profile's last load took, for the ETA while it loads (``None``: unknown)."""

    @property
    def label(self) -> str | None:
        """The name shown for the server: its profile's, or ``attached``."""
        if self.attached:
            return ATTACHED
        return self.profile.name if self.profile is not None else None

    @property
    def ready(self) -> bool:
        """The server answers requests."""
        return self.state is ServerState.READY


@dataclass(frozen=True)
class RemoteChat:
    """A ``[[remotes]]`` server the chat talks to instead of the served one."""

    name: str
    url: str
    api_key: str | None
    ready: bool
    """It was up at its last poll when it was chosen."""


def after_event(
    serving: ServingState, event: ServerEvent, profiles: Mapping[str, Profile]
) -> ServingState:
    """``serving`` once ``event`` has happened; ``profiles`` are the config's, by name.

    A state change names the profile it is about (a swap, the bench and compare mode start other
    profiles through the same manager): that profile is the served one from then on.
    """
    if isinstance(event, StateChanged):
        profile = profiles.get(event.profile, serving.profile) if event.profile else serving.profile
        # An attached server's reason (cannot connect...) holds until its state changes again.
        unreachable = serving.state is ServerState.UNREACHABLE
        detail = event.detail if event.detail or unreachable else serving.detail
        since, expected = None, None
        if event.state in (ServerState.STARTING, ServerState.LOADING):
            since = serving.starting_since or event.at
            same = serving.profile is not None and profile is serving.profile
            expected = serving.expected_load_s or (serving.load_time_s if same else None)
        return replace(
            serving,
            state=event.state,
            profile=profile,
            detail=detail,
            starting_since=since,
            expected_load_s=expected,
        )
    if isinstance(event, Ready):
        return replace(serving, load_time_s=event.load_time_s, detail="")
    if isinstance(event, Exited) and not event.expected:
        return replace(serving, detail=event.reason)
    return serving


def not_ready_notice(serving: ServingState) -> str:
    """What to tell someone who sends a prompt while the server cannot answer: what is true
    and what to do (``stopped — F2 to start``), not just "not ready"."""
    state = serving.state
    if serving.attached:
        if state is ServerState.UNREACHABLE:
            return serving.detail or "the attached server cannot be reached"
        return f"the attached server is {state.value}: it is started elsewhere"
    if state in (ServerState.STOPPED, ServerState.CRASHED):
        return f"the server is {state.value} — F2 to start"
    if state in (ServerState.STARTING, ServerState.LOADING):
        return "the server is still loading the model — the bar says ● ready when it answers"
    return f"the server is {state.value}"


def load_progress(serving: ServingState, now: float) -> str:
    """While the server starts or loads: ``12 s, about 8 s left`` (the ETA from this profile's
    last load), else ``""``."""
    if serving.starting_since is None or serving.state not in (
        ServerState.STARTING,
        ServerState.LOADING,
    ):
        return ""
    elapsed = max(0.0, now - serving.starting_since)
    text = f"{elapsed:.0f} s"
    if serving.expected_load_s:
        left = serving.expected_load_s - elapsed
        text += f", about {left:.0f} s left" if left >= 1 else ", nearly done"
    return text


def run_divider(profile: str | None, at: float) -> str:
    """The server log's line between two runs of the server: which profile, started when."""
    when = time.strftime("%H:%M:%S", time.localtime(at))
    return f"──── llama-server start: {profile or 'server'} at {when} ────"
