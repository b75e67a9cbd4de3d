"""Which replies are quiet: the rule, from how the previous reply of the same profile ran.

Drawing a reply token by token costs this machine a wake per update; with the server's threads
on every core each wake takes a core from the model, which matters at 330 tokens/s and about
nothing at the 20 tokens/s of a big MoE (the cost is per token). So a reply is quiet (read once a
second, its token count shown, its text whole at the end: ``core/chat/quiet_reply.py``) only when
the newest reply of the same profile decoded at ``quiet_above_tps`` or faster with no idle CPU
core (``core/chat/pacing.py``), and only for a server on this machine: idle cores here say
nothing about a remote one. "The same profile" is its identity (``core/config/identity.py``: its
model file and flags), never its name: another config's profile of the same name, or this one
with other flags, is another profile, whose run says nothing about this one's (an attached
server, with no profile, by its address: ``DecodeOwner``). (A quiet reply is streamed by the
server all the same, so that Esc stops it at once: one asked whole went on for seconds.) Each
reply's run is recorded in the history database (``HistoryStore.record_decode``, a
``DecodeRun``: the store owns the record, this module the rule), so the rule holds across
restarts; a quiet reply is recorded too, so freeing a core (or a slower split) brings streaming
back on the next reply.
``core/chat/session.py`` applies it to each turn.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from coder_tui.core.security import is_loopback
from coder_tui.core.store.schema import DecodeRun


def quiet_next(last: DecodeRun | None, quiet_above_tps: float, server_url: str) -> bool:
    """Whether the next reply to ``server_url`` is quiet (shown whole), after ``last``
    (``quiet_above_tps`` 0: never; a server not on this machine: never)."""
    return (
        quiet_above_tps > 0
        and is_loopback(urlsplit(server_url).hostname or "")
        and last is not None
        and last.cpu_saturated
        and last.tokens_per_second >= quiet_above_tps
    )
