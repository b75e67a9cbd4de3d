"""Live metrics for the App: the sampling worker, and where each snapshot goes.

A mixin of ``CoderApp`` (``ui/app.py``): one ``MetricsSampler`` per server address runs in a
worker and posts ``MetricsUpdated``; the handler feeds the exporter, the dashboard or the tiles
beside the chat, and watches the host samples for a CPU with no idle core. While none is idle,
every wake-up of this app stalls the model's threads, so the samplers and the tiles slow to every
``BUSY_SLOWDOWN`` ticks and the prompt's cursor stops blinking (``core/cpu_pace.py``). A request
that starts after one that took every core slows them at the tick that sees it start.
"""

from __future__ import annotations

from contextlib import aclosing

from textual import work

from coder_tui.core.chat.pacing import BusyPace, idle_cores
from coder_tui.core.exporter.http import ProfileLabels, PrometheusExporter
from coder_tui.core.metrics.bus import MetricsSampler, SamplerConfig
from coder_tui.core.metrics.types import ServerPhase
from coder_tui.ui.app_base import AppBase
from coder_tui.ui.messages import MetricsUpdated
from coder_tui.ui.screens.dashboard import DashboardScreen

WORKING = (ServerPhase.PROMPT, ServerPhase.GENERATING)
"""Phases in which llama-server computes (and may take every core)."""

BUSY_SLOWDOWN = 2
"""While no CPU core is idle, the metrics are sampled and shown every this many intervals (every
2 s at the default 1 Hz, nvitop's default), unless ``[chat] busy_refresh_s`` is 0."""


class MetricsActions(AppBase):
    """The metrics worker and the ``MetricsUpdated`` handler."""

    exporter: PrometheusExporter | None
    tiles_pace: BusyPace

    @work(exclusive=True, group="metrics", exit_on_error=False)
    async def _sample_metrics(self, url: str) -> None:
        interval = max(1.0, self.metrics_interval_s)
        self.sampler = MetricsSampler(
            url,
            config=SamplerConfig(interval_s=interval, server_interval_s=interval),
            api_key=self.main.api_key if self.main is not None else None,  # /slots needs it too
        )
        if self.attached is not None:
            self.sampler.watch(pid=None, base_url=url)
        async with aclosing(self.sampler.run()) as snapshots:
            async for snap in snapshots:
                self.post_message(MetricsUpdated(snap))

    def on_metrics_updated(self, message: MetricsUpdated) -> None:
        self.last_metrics = message.snapshot
        if self.exporter is not None:  # the same snapshot, no extra sampling
            profile = self.main.profile if self.main is not None else None
            labels = ProfileLabels.from_profile(profile) if profile is not None else None
            self.exporter.update(message.snapshot, labels)
        server = message.snapshot.server
        if self.attached is not None and server is not None:  # its watcher need not ask too
            if server.phase in (ServerPhase.DOWN, ServerPhase.LOADING):
                self.attached.seen_down()
            else:
                self.attached.seen_alive()
        host = message.snapshot.host
        if (
            host is not None
            and host.cpu_percent_per_core
            and self.tiles_pace.observe(
                idle_cores(host.cpu_percent_per_core),
                None if server is None else server.phase in WORKING,
            )
        ):
            self._on_saturation(self.tiles_pace.saturated)
        if self.main is not None:
            self.main.offer_progress(message.snapshot)  # a quiet reply's token count
        if isinstance(self.screen, DashboardScreen):
            self.screen.show(message.snapshot)
        elif self.main is not None and self.screen is self.main:
            self.main.show_metrics(message.snapshot)

    def _on_saturation(self, saturated: bool) -> None:
        """No CPU core is idle (or one is again): every wake-up of this app now stalls the
        model's threads, so the samplers and the tiles slow to every ``BUSY_SLOWDOWN`` ticks and the
        prompt's cursor stops blinking."""
        if self.sampler is not None:
            self.sampler.set_slow(BUSY_SLOWDOWN if saturated else 1)
        if self.main is not None:
            self.main.cpu_saturated = saturated
            self.main.sync_cursor_blink()
