"""NVIDIA GPUs through NVML: VRAM, the server's share, utilisation, power, clocks, PCIe.

Owns ``GpuProbe`` (``nvmlInit`` once, one ``GpuSnapshot`` per ``sample``, ``nvmlShutdown`` on
``close``) and ``PcieSampler`` (a thread reading ``nvmlDeviceGetPcieThroughput``, a 20 ms window,
several times a second and averaging between samples; the cumulative PCIe byte counters are 32-bit
and wrap every few GiB, so they are not used). Nothing here raises: no driver is a snapshot with
``reason="no NVIDIA GPU"``, an unsupported field is ``None``, a device that stops answering is
marked ``lost`` while the others go on. Scheduling belongs to ``bus``.

``load_nvml`` is the seam tests replace with a fake module that has the same function names.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping
from functools import partial
from typing import Any, TypeVar

from coder_tui.core.metrics.types import NO_GPU, GpuDeviceSample, GpuSnapshot

T = TypeVar("T")

PCIE_LANE_BYTES_PER_S: Mapping[int, float] = {
    1: 250e6,  # 2.5 GT/s, 8b/10b
    2: 500e6,  # 5 GT/s, 8b/10b
    3: 8e9 * 128 / 130 / 8,
    4: 16e9 * 128 / 130 / 8,
    5: 32e9 * 128 / 130 / 8,
    6: 64e9 * 242 / 256 / 8,  # PAM4 with FLIT encoding
}
"""Usable bytes/s per lane and direction for each PCIe generation."""

# pynvml's values; a fake module need not define them.
_CONSTANTS = {
    "NVML_CLOCK_SM": 1,
    "NVML_CLOCK_MEM": 2,
    "NVML_TEMPERATURE_GPU": 0,
    "NVML_PCIE_UTIL_TX_BYTES": 0,
    "NVML_PCIE_UTIL_RX_BYTES": 1,
}
_NO_DEVICE_ERRORS = (
    "NVMLError_LibraryNotFound",
    "NVMLError_DriverNotLoaded",
    "NVMLError_NoPermission",
)


def load_nvml() -> Any:
    """The NVML binding module (``pynvml`` from nvidia-ml-py); the seam for a fake in tests."""
    import pynvml

    return pynvml


def link_bytes_per_s(gen: int | None, width: int | None) -> float | None:
    """One direction of a PCIe link of generation ``gen`` and ``width`` lanes."""
    if gen is None or width is None or gen not in PCIE_LANE_BYTES_PER_S:
        return None
    return PCIE_LANE_BYTES_PER_S[gen] * width


class _Lost(Exception):
    pass


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class GpuProbe:
    """Samples every NVIDIA device; use from one thread at a time (plus ``PcieSampler``)."""

    def __init__(self, nvml: Any | None = None) -> None:
        self._nvml_given = nvml
        self.nvml: Any = None
        self.reason: str | None = None
        self._opened = False
        self._handles: list[Any] = []
        self._lost: set[int] = set()
        self._static: list[dict[str, Any]] = []
        self._driver: str | None = None
        self._memory_v2: bool | None = None
        self._lock = threading.RLock()  # open/sample/close; PCIe reads go around it

    # -- lifecycle ---------------------------------------------------------------------------
    def open(self) -> bool:
        """``nvmlInit`` and find the devices (once); false, with ``reason`` set, when unusable."""
        with self._lock:
            if self._opened:
                return self.nvml is not None
            self._opened = True
            try:
                nvml = self._nvml_given if self._nvml_given is not None else load_nvml()
            except Exception:  # ImportError, or a broken binding: no NVML here
                self.reason = NO_GPU
                return False
            try:
                nvml.nvmlInit()
            except Exception as exc:
                no_device = any(
                    isinstance(exc, cls)
                    for cls in (getattr(nvml, n, None) for n in _NO_DEVICE_ERRORS)
                    if isinstance(cls, type)
                )
                self.reason = NO_GPU if no_device else f"NVML: {exc}"
                return False
            self.nvml = nvml
            try:
                count = int(nvml.nvmlDeviceGetCount())
                self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            except Exception as exc:
                self.reason = f"NVML: {exc}"
                self._shutdown()
                return False
            if not self._handles:
                self.reason = NO_GPU
                self._shutdown()
                return False
            self._driver = self._try(lambda: _text(nvml.nvmlSystemGetDriverVersion()))
            self._static = [self._read_static(i) for i in range(len(self._handles))]
            return True

    def close(self) -> None:
        """``nvmlShutdown`` (once); sampling afterwards reports no GPU."""
        with self._lock:
            self._shutdown()
            self._opened = True

    def _shutdown(self) -> None:
        if self.nvml is not None:
            nvml, self.nvml = self.nvml, None
            self._handles = []
            try:
                nvml.nvmlShutdown()
            except Exception:  # shutting down a library that is going away: nothing to do
                self.reason = self.reason or "NVML closed"
        self.reason = self.reason or "NVML closed"

    @property
    def device_count(self) -> int:
        return len(self._handles)

    # -- queries -----------------------------------------------------------------------------
    def _const(self, name: str) -> Any:
        return getattr(self.nvml, name, _CONSTANTS[name])

    def _is(self, exc: BaseException, name: str) -> bool:
        cls = getattr(self.nvml, name, None)
        return isinstance(cls, type) and isinstance(exc, cls)

    def _try(self, fn: Callable[[], T]) -> T | None:
        """``fn()``, or ``None`` when NVML can't say; a lost GPU raises ``_Lost``."""
        try:
            return fn()
        except Exception as exc:
            if self._is(exc, "NVMLError_GpuIsLost"):
                raise _Lost from exc
            return None

    def _read_static(self, i: int) -> dict[str, Any]:
        nvml, h = self.nvml, self._handles[i]
        try:
            mem = self._const("NVML_CLOCK_MEM")
            return {
                "name": self._try(lambda: _text(nvml.nvmlDeviceGetName(h))),
                "uuid": self._try(lambda: _text(nvml.nvmlDeviceGetUUID(h))),
                "bus": self._try(lambda: int(nvml.nvmlDeviceGetMemoryBusWidth(h))),
                "mem_max": self._try(lambda: int(nvml.nvmlDeviceGetMaxClockInfo(h, mem))),
                "gen_max": self._try(lambda: int(nvml.nvmlDeviceGetMaxPcieLinkGeneration(h))),
                "width_max": self._try(lambda: int(nvml.nvmlDeviceGetMaxPcieLinkWidth(h))),
            }
        except _Lost:
            self._lost.add(i)
            return {}

    def read_pcie(self) -> dict[int, tuple[float | None, float | None]]:
        """One PCIe throughput reading per live device: index -> (rx, tx) bytes/s (~20 ms each)."""
        out: dict[int, tuple[float | None, float | None]] = {}
        nvml = self.nvml
        if nvml is None:
            return out
        rx_c, tx_c = self._const("NVML_PCIE_UTIL_RX_BYTES"), self._const("NVML_PCIE_UTIL_TX_BYTES")
        for i, h in enumerate(list(self._handles)):
            if i in self._lost:
                continue
            try:
                # NVML reports KB/s (1024 bytes) averaged over a 20 ms window.
                rx = self._try(partial(nvml.nvmlDeviceGetPcieThroughput, h, rx_c))
                tx = self._try(partial(nvml.nvmlDeviceGetPcieThroughput, h, tx_c))
            except _Lost:
                continue  # ``sample`` marks it lost
            out[i] = (
                float(rx) * 1024 if rx is not None else None,
                float(tx) * 1024 if tx is not None else None,
            )
        return out

    def sample(
        self,
        pids: Collection[int] = (),
        pcie: Mapping[int, tuple[float | None, float | None]] | None = None,
    ) -> GpuSnapshot:
        """Every device now; ``pids`` are the server and its children, ``pcie`` averaged rates."""
        with self._lock:
            return self._sample(pids, pcie)

    def _sample(
        self,
        pids: Collection[int],
        pcie: Mapping[int, tuple[float | None, float | None]] | None,
    ) -> GpuSnapshot:
        if not self._opened:
            self.open()
        nvml = self.nvml
        if nvml is None:
            return GpuSnapshot(available=False, reason=self.reason or NO_GPU)
        devices = []
        for i in range(len(self._handles)):
            static = self._static[i] if i < len(self._static) else {}
            if i not in self._lost:
                try:
                    devices.append(self._device(i, static, pids, (pcie or {}).get(i)))
                    continue
                except _Lost:
                    self._lost.add(i)
            devices.append(GpuDeviceSample(index=i, name=static.get("name"), lost=True))
        return GpuSnapshot(available=True, devices=tuple(devices), driver_version=self._driver)

    def _device(
        self,
        i: int,
        static: Mapping[str, Any],
        pids: Collection[int],
        pcie: tuple[float | None, float | None] | None,
    ) -> GpuDeviceSample:
        nvml, h = self.nvml, self._handles[i]
        try:
            mem = self._memory_info(h)
        except Exception as exc:  # the one query every device answers: failing means it's gone
            raise _Lost from exc
        util = self._try(lambda: nvml.nvmlDeviceGetUtilizationRates(h))
        power_mw = self._try(lambda: float(nvml.nvmlDeviceGetPowerUsage(h)))
        limit_mw = self._try(lambda: float(nvml.nvmlDeviceGetEnforcedPowerLimit(h)))
        temp = self._try(
            lambda: float(nvml.nvmlDeviceGetTemperature(h, self._const("NVML_TEMPERATURE_GPU")))
        )
        sm = self._try(lambda: int(nvml.nvmlDeviceGetClockInfo(h, self._const("NVML_CLOCK_SM"))))
        mclk = self._try(lambda: int(nvml.nvmlDeviceGetClockInfo(h, self._const("NVML_CLOCK_MEM"))))
        gen = self._try(lambda: int(nvml.nvmlDeviceGetCurrPcieLinkGeneration(h)))
        width = self._try(lambda: int(nvml.nvmlDeviceGetCurrPcieLinkWidth(h)))
        server_vram = None
        if pids:
            procs = self._try(lambda: list(nvml.nvmlDeviceGetComputeRunningProcesses(h)))
            if procs is not None:
                used = [getattr(p, "usedGpuMemory", None) for p in procs if p.pid in pids]
                server_vram = sum(int(u) for u in used if u is not None)
        bus, mem_max = static.get("bus"), static.get("mem_max")
        clock_for_bw = mem_max or mclk
        return GpuDeviceSample(
            index=i,
            name=static.get("name"),
            uuid=static.get("uuid"),
            vram_total_bytes=int(mem.total),
            vram_used_bytes=int(mem.used),
            vram_free_bytes=int(mem.free),
            server_vram_bytes=server_vram,
            gpu_util_percent=float(util.gpu) if util is not None else None,
            mem_util_percent=float(util.memory) if util is not None else None,
            power_w=power_mw / 1000 if power_mw is not None else None,
            power_limit_w=limit_mw / 1000 if limit_mw is not None else None,
            temperature_c=temp,
            sm_clock_mhz=sm,
            mem_clock_mhz=mclk,
            mem_clock_max_mhz=mem_max,
            memory_bus_width_bits=bus,
            vram_bandwidth_bytes_per_s=(
                clock_for_bw * 1e6 * bus / 8 * 2 if clock_for_bw and bus else None
            ),
            pcie_gen=gen,
            pcie_width=width,
            pcie_gen_max=static.get("gen_max"),
            pcie_width_max=static.get("width_max"),
            pcie_link_bytes_per_s=link_bytes_per_s(gen, width),
            pcie_link_max_bytes_per_s=link_bytes_per_s(
                static.get("gen_max"), static.get("width_max")
            ),
            pcie_rx_bytes_per_s=pcie[0] if pcie else None,
            pcie_tx_bytes_per_s=pcie[1] if pcie else None,
        )

    def _memory_info(self, h: Any) -> Any:
        """Version 2 where the driver has it: ``used`` then leaves out the driver's reserved
        memory, as nvidia-smi does (version 1 counts it, ~0.6 GiB more on an H200)."""
        nvml = self.nvml
        v2 = getattr(nvml, "nvmlMemory_v2", None)
        if v2 is not None and self._memory_v2 is not False:
            try:
                mem = nvml.nvmlDeviceGetMemoryInfo(h, version=v2)
                self._memory_v2 = True
                return mem
            except Exception as exc:
                if self._is(exc, "NVMLError_GpuIsLost") or self._memory_v2:
                    raise
                self._memory_v2 = False  # an older driver: version 1 from now on
        return nvml.nvmlDeviceGetMemoryInfo(h)


class PcieSampler:
    """A thread reading PCIe throughput at ``rate_hz``; ``take`` averages since the last take."""

    def __init__(self, probe: GpuProbe, rate_hz: float = 1.0) -> None:
        self.probe = probe
        self.interval_s = 1.0 / rate_hz
        self._sums: dict[int, list[float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._active = threading.Event()
        self._active.set()
        self._thread: threading.Thread | None = None

    def set_active(self, active: bool) -> None:
        """Read only while ``active`` (the owner pauses it while the server idles)."""
        if active:
            self._active.set()
        else:
            self._active.clear()

    def start(self) -> None:
        if self._thread is None and self.probe.nvml is not None:
            self._thread = threading.Thread(target=self._loop, name="coder-tui-pcie", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        self._active.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self._active.wait(0.5):
                continue  # paused: check for stop twice a second, read nothing
            self.poll_once()
            self._stop.wait(self.interval_s)

    def poll_once(self) -> None:
        """One reading of every device, added to the running sums (the thread's body)."""
        try:
            readings = self.probe.read_pcie()
        except Exception:  # NVML shut down under us while closing: nothing to add
            return
        with self._lock:
            for i, (rx, tx) in readings.items():
                if rx is None or tx is None:
                    continue
                acc = self._sums.setdefault(i, [0.0, 0.0, 0.0])
                acc[0] += rx
                acc[1] += tx
                acc[2] += 1

    def take(self) -> dict[int, tuple[float | None, float | None]]:
        """Mean (rx, tx) bytes/s per device since the previous ``take``; resets the sums."""
        with self._lock:
            sums, self._sums = self._sums, {}
        return {i: (rx / n, tx / n) for i, (rx, tx, n) in sums.items() if n}
