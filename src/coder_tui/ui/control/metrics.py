"""Live metrics for the App: the sampling worker, the Prometheus exporter, and the busy pace.

Owns ``MetricsFeed``: one ``MetricsSampler`` runs in a worker (group ``metrics``) and posts
``MetricsUpdated``; ``take`` is the App's first stop for each snapshot: the exporter gets it (the
same snapshot, no extra sampling), an attached server's watcher hears whether it answered, and the
host samples are watched for a CPU with no idle core. While none is idle, every wake-up of this
app stalls the model's threads, so the samplers slow to every ``BUSY_SLOWDOWN`` ticks and ``take``
tells the App, which slows the tiles and stops the prompt's cursor blinking
(``core/chat/pacing.py``). A request that starts after one that took every core slows them at the
tick that sees it start. ``new_run`` forgets the last server run's figures when the App starts
another run (a start, restart or swap). Where each snapshot is shown is the App's.
"""

from __future__ import annotations

from contextlib import aclosing
from functools import partial
from typing import Any

from textual.app import App
from textual.worker import Worker

from coder_tui.core.chat.pacing import BusyPace, idle_cores
from coder_tui.core.config.loader import Profile
from coder_tui.core.errors import UserError
from coder_tui.core.exporter.http import ProfileLabels, PrometheusExporter
from coder_tui.core.metrics.bus import MetricsSampler, SamplerConfig
from coder_tui.core.metrics.types import MetricsSnapshot, ServerPhase
from coder_tui.core.server.attach import AttachedServer
from coder_tui.ui.messages import MetricsUpdated

WORKING = (ServerPhase.PROMPT, ServerPhase.GENERATING)
"""Phases in which llama-server computes (and may take every core)."""

BUSY_SLOWDOWN = 2
"""While no CPU core is idle, the metrics are sampled and shown every this many intervals (every
2 s at the default 1 Hz, nvitop's default), unless ``[chat] busy_refresh_s`` is 0."""


class MetricsFeed:
    """The sampler's worker, the exporter it feeds, and whether the CPU has an idle core."""

    def __init__(
        self,
        app: App[Any],
        *,
        interval_s: float = 1.0,
        busy_refresh_s: float = 1.0,
        exporter: PrometheusExporter | None = None,
    ) -> None:
        self.app = app
        self.interval_s = max(1.0, interval_s)
        self.exporter = exporter
        self.sampler: MetricsSampler | None = None
        self.last: MetricsSnapshot | None = None
        self.pace = BusyPace(float(BUSY_SLOWDOWN) if busy_refresh_s > 0 else 0.0)
        """Saturated while no CPU core is idle (from the host samples). ``[chat] busy_refresh_s
        = 0`` turns this slowing off too."""

    def start_exporter(self) -> None:
        """Serve ``/metrics`` (``--prometheus``); a port that cannot be had is said, not fatal."""
        if self.exporter is None:
            return
        try:
            self.exporter.start()
            self.app.notify(f"Prometheus metrics at {self.exporter.url}")
        except UserError as exc:
            self.app.notify(str(exc), severity="error", timeout=10)
            self.exporter = None

    def stop_exporter(self) -> None:
        if self.exporter is not None:
            self.exporter.stop()

    def start(self, url: str, api_key: str | None, *, attached: bool) -> Worker[None]:
        """Sample the host, the GPU and the server at ``url`` (``api_key``: ``/slots`` needs it)."""
        return self.app.run_worker(
            partial(self._sample, url, api_key, attached),
            group="metrics",
            exclusive=True,
            exit_on_error=False,
        )

    async def _sample(self, url: str, api_key: str | None, attached: bool) -> None:
        config = SamplerConfig(interval_s=self.interval_s, server_interval_s=self.interval_s)
        self.sampler = MetricsSampler(url, config=config, api_key=api_key)
        if attached:
            self.sampler.watch(pid=None, base_url=url)
        async with aclosing(self.sampler.run()) as snapshots:
            async for snap in snapshots:
                self.app.post_message(MetricsUpdated(snap))

    def new_run(self, profile: Profile | None) -> None:
        """A server run begins (a start, a restart, a swap to ``profile``): the figures of the
        last one are forgotten (``MetricsSampler.new_run``), and every view shows at once the last
        snapshot without them, not the old profile's speeds under the new profile's name."""
        if self.sampler is None:
            return
        self.sampler.new_run(profile)
        if self.last is not None:
            self.app.post_message(MetricsUpdated(self.sampler.cleared(self.last)))

    def watch(self, pid: int | None, profile: Profile | None, url: str) -> None:
        """A managed server became ready: sample its process and its model's layout."""
        if self.sampler is not None:
            self.sampler.watch(pid=pid, profile=profile, base_url=url)

    def take(
        self, snap: MetricsSnapshot, profile: Profile | None, attached: AttachedServer | None
    ) -> bool | None:
        """Feed ``snap`` to the exporter and the attached watcher; return whether no CPU core is
        idle when that changed (the samplers already slowed or sped up), else ``None``."""
        self.last = snap
        if self.exporter is not None:
            labels = ProfileLabels.from_profile(profile) if profile is not None else None
            self.exporter.update(snap, labels)
        server = snap.server
        if attached is not None and server is not None:  # its watcher need not ask too
            if server.phase in (ServerPhase.DOWN, ServerPhase.LOADING):
                attached.seen_down()
            else:
                attached.seen_alive()
        host = snap.host
        if (
            host is None
            or not host.cpu_percent_per_core
            or not self.pace.observe(
                idle_cores(host.cpu_percent_per_core),
                None if server is None else server.phase in WORKING,
            )
        ):
            return None
        saturated = self.pace.saturated
        if self.sampler is not None:
            self.sampler.set_slow(BUSY_SLOWDOWN if saturated else 1)
        return saturated
