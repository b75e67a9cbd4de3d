"""Generation and prompt speeds, one definition per figure, for one server run at a time.

Owns ``RunSpeeds``: from each tick's ``ServerSample`` it makes the tick's ``Speeds``. The number
a speed tile shows as ``now`` is ``Speed.now_tokens_per_s``, and the bus appends that same value
to the kind's history series, so the tile's number is its graph's newest point. The last finished
request's speed is remembered for the current run only: ``new_run`` (a start, restart or swap, or
counters that went back) forgets it, so one profile's speed is never shown under another's name.
Sampling is ``server``'s, scheduling and the history ``bus``'s, the words on the tiles the UI's.
"""

from __future__ import annotations

from coder_tui.core.metrics.types import ServerPhase, ServerSample, Speed, Speeds

KINDS = ("generation", "prompt")


class RunSpeeds:
    """The speeds of the current server run; ``update`` once a tick, ``new_run`` at a new run."""

    def __init__(self) -> None:
        self.run = 0
        self._last: dict[str, float | None] = dict.fromkeys(KINDS)

    def new_run(self) -> None:
        """A new server run: nothing measured before it is its figure."""
        self.run += 1
        self._last = dict.fromkeys(KINDS)

    def current(self) -> Speeds:
        """What is known with no sample of the run yet: its last requests' speeds (if any)."""
        return self.update(None)

    def update(self, server: ServerSample | None) -> Speeds:
        """The speeds for this tick's ``server`` sample (``None``: no server sample)."""
        if server is not None:
            for kind in KINDS:
                busy = getattr(server, f"{kind}_tokens_per_busy_s")
                if busy:  # a request of this run ended in the interval
                    self._last[kind] = busy
        running = (
            server.generation_tokens_per_request_s
            if server is not None and server.phase is ServerPhase.GENERATING
            else None
        )
        return Speeds(
            generation=Speed(
                now_tokens_per_s=server.generation_tokens_per_s if server else None,
                request_tokens_per_s=running,
                last_request_tokens_per_s=self._last["generation"],
            ),
            prompt=Speed(
                now_tokens_per_s=server.prompt_tokens_per_s if server else None,
                last_request_tokens_per_s=self._last["prompt"],
            ),
            run=self.run,
        )
