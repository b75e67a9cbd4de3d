"""What each NVML query of the GPU sampler costs this process: CPU and wall time per call.

For every query ``core/metrics/gpu.py`` makes per device and tick (and the PCIe throughput
reading of ``PcieSampler``), ``--calls`` calls in a row on device 0: the median wall time and the
CPU time per call (this thread's ``thread_time``, which counts the driver's work in the kernel).
Then the same for a whole ``GpuProbe.sample()``. Needs an NVIDIA GPU; says so and exits 0 without.
The table is appended to ``docs/performance.md`` (``--no-append`` to skip).

    python benchmarks/nvml_calls.py [--calls 50] [--no-append]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from report import publish

from coder_tui.core.metrics.gpu import GpuProbe, load_nvml


def measure(fn: Callable[[], Any], calls: int) -> tuple[float, float]:
    """(median wall µs, mean CPU µs) of ``fn`` over ``calls`` calls."""
    walls = []
    cpu0 = time.thread_time()
    for _ in range(calls):
        t = time.perf_counter()
        with contextlib.suppress(Exception):  # an unsupported query costs its call all the same
            fn()
        walls.append(time.perf_counter() - t)
    cpu = time.thread_time() - cpu0
    return 1e6 * statistics.median(walls), 1e6 * cpu / calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument(
        "--no-append", action="store_true", help="don't append to docs/performance.md"
    )
    args = parser.parse_args()
    try:
        nvml = load_nvml()
        nvml.nvmlInit()
        h = nvml.nvmlDeviceGetHandleByIndex(0)
    except Exception as exc:
        print(f"no NVIDIA GPU: {exc}")
        return 0
    queries: dict[str, Callable[[], Any]] = {
        "GetMemoryInfo (v2)": lambda: nvml.nvmlDeviceGetMemoryInfo(h, version=nvml.nvmlMemory_v2),
        "GetUtilizationRates": lambda: nvml.nvmlDeviceGetUtilizationRates(h),
        "GetPowerUsage": lambda: nvml.nvmlDeviceGetPowerUsage(h),
        "GetEnforcedPowerLimit": lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(h),
        "GetTemperature": lambda: nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU),
        "GetClockInfo (SM)": lambda: nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM),
        "GetClockInfo (MEM)": lambda: nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_MEM),
        "GetCurrPcieLinkGeneration": lambda: nvml.nvmlDeviceGetCurrPcieLinkGeneration(h),
        "GetCurrPcieLinkWidth": lambda: nvml.nvmlDeviceGetCurrPcieLinkWidth(h),
        "GetComputeRunningProcesses": lambda: nvml.nvmlDeviceGetComputeRunningProcesses(h),
        "GetPcieThroughput (RX)": lambda: nvml.nvmlDeviceGetPcieThroughput(
            h, nvml.NVML_PCIE_UTIL_RX_BYTES
        ),
    }
    name = _text(nvml.nvmlDeviceGetName(h))
    lines = [
        f"### nvml_calls ({time.strftime('%Y-%m-%d %H:%M')}, {name}, "
        f"driver {_text(nvml.nvmlSystemGetDriverVersion())})",
        "",
        "| query | wall, µs (median) | CPU, µs per call |",
        "| --- | --- | --- |",
    ]
    for query, fn in queries.items():
        calls = max(5, args.calls // 10) if "Throughput" in query else args.calls
        wall, cpu = measure(fn, calls)
        lines.append(f"| {query} | {wall:.0f} | {cpu:.0f} |")
    nvml.nvmlShutdown()
    probe = GpuProbe()
    if probe.open():
        wall, cpu = measure(probe.sample, args.calls)
        lines.append(
            f"| GpuProbe.sample() (all of the above but PCIe throughput) | {wall:.0f} | {cpu:.0f} |"
        )
        probe.close()
    text = "\n".join(lines)
    publish(text, append=not args.no_append)
    return 0


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


if __name__ == "__main__":
    sys.exit(main())
