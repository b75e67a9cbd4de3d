"""The serving state: what the App serves (or watches), as one frozen record.

``CoderApp`` owns the one ``ServingState`` and is the only one to change it: from the server's
events (``after_event``), a swap's reports and a failed start. Screens and widgets receive it as an
attribute (``MainScreen.serving``, bound into ``ServerBar.serving``) and keep no copy of any part
of it. ``RemoteChat`` is where the chat talks instead of the served server (the fleet view's
Enter); it changes where replies come from, not what is served. Knows nothing of Textual.
"""

from __future__ import annotations

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
        return replace(serving, state=event.state, profile=profile)
    if isinstance(event, Ready):
        return replace(serving, load_time_s=event.load_time_s, detail="")
    if isinstance(event, Exited) and not event.expected:
        return replace(serving, detail=event.reason)
    return serving
