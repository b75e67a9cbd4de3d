"""Live metrics without a UI: frozen samples of the GPU, host, server and MoE traffic.

``MetricsSampler`` (``bus``) runs the samplers and yields ``MetricsSnapshot``s; the probes
(``gpu``, ``host``, ``server``) and the traffic model (``moe``) can be used on their own.
Modules here import no Textual or Rich.
"""

from coder_tui.core.metrics.bus import MetricsSampler, SamplerConfig
from coder_tui.core.metrics.series import History
from coder_tui.core.metrics.types import (
    NO_GPU,
    Bound,
    GpuDeviceSample,
    GpuSnapshot,
    HostSnapshot,
    MetricsSnapshot,
    MoeSample,
    Placement,
    ProcessSample,
    ServerPhase,
    ServerSample,
    SlotSample,
    Speed,
    Speeds,
    TokenTraffic,
)

__all__ = [
    "NO_GPU",
    "Bound",
    "GpuDeviceSample",
    "GpuSnapshot",
    "History",
    "HostSnapshot",
    "MetricsSampler",
    "MetricsSnapshot",
    "MoeSample",
    "Placement",
    "ProcessSample",
    "SamplerConfig",
    "ServerPhase",
    "ServerSample",
    "SlotSample",
    "Speed",
    "Speeds",
    "TokenTraffic",
]
