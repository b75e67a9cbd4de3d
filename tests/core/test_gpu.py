"""GpuProbe and PcieSampler against a fake NVML module (no driver, 1 and 2 GPUs, gaps, a lost GPU)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from coder_tui.core.metrics import gpu as gpu_mod
from coder_tui.core.metrics.gpu import GpuProbe, PcieSampler, link_bytes_per_s
from coder_tui.core.metrics.types import NO_GPU

GiB = 1 << 30


class NVMLError(Exception):
    pass


class NVMLError_LibraryNotFound(NVMLError):
    pass


class NVMLError_DriverNotLoaded(NVMLError):
    pass


class NVMLError_NotSupported(NVMLError):
    pass


class NVMLError_GpuIsLost(NVMLError):
    pass


class NVMLError_Unknown(NVMLError):
    pass


@dataclass
class Dev:
    name: str = "NVIDIA H100 80GB HBM3"
    total: int = 80 * GiB
    used: int = 20 * GiB
    procs: list[tuple[int, int | None]] = field(default_factory=list)
    unsupported: set[str] = field(default_factory=set)
    lost: bool = False
    rx_kb: list[float] = field(default_factory=lambda: [1000.0])
    tx_kb: float = 10.0


class FakeNVML:
    """The functions and error classes GpuProbe uses, with pynvml's names."""

    NVMLError = NVMLError
    NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    NVMLError_DriverNotLoaded = NVMLError_DriverNotLoaded
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_GpuIsLost = NVMLError_GpuIsLost
    NVML_PCIE_UTIL_TX_BYTES = 0
    NVML_PCIE_UTIL_RX_BYTES = 1

    def __init__(self, devices: list[Dev], init_error: type[Exception] | None = None) -> None:
        self.devices = devices
        self.init_error = init_error
        self.inits = self.shutdowns = 0

    def _dev(self, fn: str, h: int) -> Dev:
        d = self.devices[h]
        if d.lost:
            raise NVMLError_GpuIsLost()
        if fn in d.unsupported:
            raise NVMLError_NotSupported()
        return d

    def nvmlInit(self) -> None:
        self.inits += 1
        if self.init_error:
            raise self.init_error()

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self) -> bytes:
        return b"550.54"

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetName(self, h: int) -> str:
        return self._dev("name", h).name

    def nvmlDeviceGetUUID(self, h: int) -> str:
        return f"GPU-{h}"

    def nvmlDeviceGetMemoryBusWidth(self, h: int) -> int:
        self._dev("bus", h)
        return 5120

    def nvmlDeviceGetMaxClockInfo(self, h: int, kind: int) -> int:
        self._dev("maxclock", h)
        return 2619

    def nvmlDeviceGetMaxPcieLinkGeneration(self, h: int) -> int:
        return 5

    def nvmlDeviceGetMaxPcieLinkWidth(self, h: int) -> int:
        return 16

    def nvmlDeviceGetMemoryInfo(self, h: int) -> Any:
        d = self._dev("memory", h)
        return SimpleNamespace(total=d.total, used=d.used, free=d.total - d.used)

    def nvmlDeviceGetUtilizationRates(self, h: int) -> Any:
        self._dev("util", h)
        return SimpleNamespace(gpu=87, memory=55)

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        self._dev("power", h)
        return 312_500

    def nvmlDeviceGetEnforcedPowerLimit(self, h: int) -> int:
        self._dev("power", h)
        return 700_000

    def nvmlDeviceGetTemperature(self, h: int, sensor: int) -> int:
        return 61

    def nvmlDeviceGetClockInfo(self, h: int, kind: int) -> int:
        self._dev("clock", h)
        return 1980 if kind == 1 else 2619

    def nvmlDeviceGetCurrPcieLinkGeneration(self, h: int) -> int:
        self._dev("pcie", h)
        return 4

    def nvmlDeviceGetCurrPcieLinkWidth(self, h: int) -> int:
        self._dev("pcie", h)
        return 16

    def nvmlDeviceGetComputeRunningProcesses(self, h: int) -> list[Any]:
        d = self._dev("procs", h)
        return [SimpleNamespace(pid=p, usedGpuMemory=m) for p, m in d.procs]

    def nvmlDeviceGetPcieThroughput(self, h: int, counter: int) -> float:
        d = self._dev("pcie", h)
        if counter == self.NVML_PCIE_UTIL_RX_BYTES:
            return d.rx_kb.pop(0) if len(d.rx_kb) > 1 else d.rx_kb[0]
        return d.tx_kb


@pytest.mark.parametrize("error", [NVMLError_LibraryNotFound, NVMLError_DriverNotLoaded])
def test_no_driver(error: type[Exception]) -> None:
    fake = FakeNVML([], init_error=error)
    probe = GpuProbe(fake)
    snap = probe.sample()
    assert not snap.available and snap.reason == NO_GPU == "no NVIDIA GPU" and snap.devices == ()
    probe.close()
    assert fake.shutdowns == 0


def test_no_pynvml_through_the_module_seam(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> Any:
        raise ImportError("No module named 'pynvml'")

    monkeypatch.setattr(gpu_mod, "load_nvml", missing)
    snap = GpuProbe().sample()
    assert not snap.available and snap.reason == NO_GPU


def test_seam_injects_a_fake(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNVML([Dev()])
    monkeypatch.setattr(gpu_mod, "load_nvml", lambda: fake)
    assert GpuProbe().sample().devices[0].name == "NVIDIA H100 80GB HBM3"


def test_zero_devices_is_no_gpu() -> None:
    fake = FakeNVML([])
    snap = GpuProbe(fake).sample()
    assert not snap.available and snap.reason == NO_GPU and fake.shutdowns == 1


def test_one_gpu_every_field() -> None:
    fake = FakeNVML([Dev(procs=[(100, 10 * GiB), (101, 2 * GiB), (999, 5 * GiB)])])
    probe = GpuProbe(fake)
    snap = probe.sample(pids={100, 101}, pcie={0: (5e9, 1e8)})
    assert snap.available and snap.driver_version == "550.54"
    (d,) = snap.devices
    assert (d.name, d.uuid, d.lost) == ("NVIDIA H100 80GB HBM3", "GPU-0", False)
    assert (d.vram_total_bytes, d.vram_used_bytes, d.vram_free_bytes) == (
        80 * GiB,
        20 * GiB,
        60 * GiB,
    )
    assert d.server_vram_bytes == 12 * GiB  # the server and its child, not pid 999
    assert (d.gpu_util_percent, d.mem_util_percent) == (87, 55)
    assert (d.power_w, d.power_limit_w, d.temperature_c) == (312.5, 700.0, 61)
    assert (d.sm_clock_mhz, d.mem_clock_mhz, d.mem_clock_max_mhz) == (1980, 2619, 2619)
    assert d.memory_bus_width_bits == 5120
    assert d.vram_bandwidth_bytes_per_s == pytest.approx(2619e6 * 5120 / 8 * 2)  # ~3.35 TB/s
    assert (d.pcie_gen, d.pcie_width, d.pcie_gen_max, d.pcie_width_max) == (4, 16, 5, 16)
    assert d.pcie_link_bytes_per_s == pytest.approx(16 * 16e9 * 128 / 130 / 8)
    assert d.pcie_link_max_bytes_per_s == pytest.approx(16 * 32e9 * 128 / 130 / 8)
    assert (d.pcie_rx_bytes_per_s, d.pcie_tx_bytes_per_s) == (5e9, 1e8)
    assert fake.inits == 1
    probe.sample()
    assert fake.inits == 1  # nvmlInit once
    probe.close()
    probe.close()
    assert fake.shutdowns == 1
    assert not probe.sample().available


def test_without_pids_server_vram_is_unknown() -> None:
    assert GpuProbe(FakeNVML([Dev(procs=[(1, GiB)])])).sample().devices[0].server_vram_bytes is None


def test_two_gpus() -> None:
    fake = FakeNVML([Dev(procs=[(7, 3 * GiB)]), Dev(name="NVIDIA RTX 4090", total=24 * GiB)])
    snap = GpuProbe(fake).sample(pids={7})
    assert [d.index for d in snap.devices] == [0, 1]
    assert snap.devices[1].name == "NVIDIA RTX 4090"
    assert snap.devices[1].vram_total_bytes == 24 * GiB
    assert [d.server_vram_bytes for d in snap.devices] == [3 * GiB, 0]


def test_unsupported_fields_are_none() -> None:
    dev = Dev(unsupported={"power", "pcie", "bus", "procs", "util"}, procs=[(1, None)])
    d = GpuProbe(FakeNVML([dev])).sample(pids={1}).devices[0]
    assert not d.lost and d.vram_used_bytes == 20 * GiB
    assert d.power_w is None and d.power_limit_w is None
    assert d.pcie_gen is None and d.pcie_link_bytes_per_s is None
    assert d.memory_bus_width_bits is None and d.vram_bandwidth_bytes_per_s is None
    assert d.gpu_util_percent is None and d.server_vram_bytes is None


def test_process_without_memory_figure_counts_zero() -> None:
    d = GpuProbe(FakeNVML([Dev(procs=[(1, None)])])).sample(pids={1}).devices[0]
    assert d.server_vram_bytes == 0


def test_lost_gpu_mid_run_keeps_the_others() -> None:
    devs = [Dev(), Dev(name="second")]
    probe = GpuProbe(FakeNVML(devs))
    assert [d.lost for d in probe.sample().devices] == [False, False]
    devs[0].lost = True
    snap = probe.sample()
    assert snap.available
    assert [d.lost for d in snap.devices] == [True, False]
    assert (
        snap.devices[0].name == "NVIDIA H100 80GB HBM3" and snap.devices[0].vram_used_bytes is None
    )
    assert snap.devices[1].vram_used_bytes == 20 * GiB
    devs[0].lost = False  # a lost handle stays lost until the probe is reopened
    assert probe.sample().devices[0].lost


def test_any_error_on_memory_info_means_lost() -> None:
    dev = Dev(unsupported={"memory"})
    assert GpuProbe(FakeNVML([dev])).sample().devices[0].lost


def test_pcie_sampler_averages_between_takes() -> None:
    fake = FakeNVML([Dev(rx_kb=[1000.0, 3000.0, 2000.0]), Dev(unsupported={"pcie"})])
    probe = GpuProbe(fake)
    assert probe.open()
    sampler = PcieSampler(probe, rate_hz=10)
    for _ in range(3):
        sampler.poll_once()
    avg = sampler.take()
    # NVML gives KB/s; the device without PCIe readings is left out
    assert avg == {0: (2000.0 * 1024, 10.0 * 1024)}
    assert sampler.take() == {}
    fake.devices[0].lost = True
    sampler.poll_once()
    assert sampler.take() == {}


def test_pcie_thread_starts_and_stops() -> None:
    probe = GpuProbe(FakeNVML([Dev()]))
    probe.open()
    sampler = PcieSampler(probe, rate_hz=200)
    sampler.start()
    import time

    time.sleep(0.05)
    sampler.stop()
    assert sampler.take()[0][0] == 1000.0 * 1024


def test_link_bandwidth_table() -> None:
    assert link_bytes_per_s(3, 16) == pytest.approx(16 * 8e9 * 128 / 130 / 8)
    assert link_bytes_per_s(None, 16) is None and link_bytes_per_s(9, 16) is None


class FakeNVMLv2(FakeNVML):
    """A driver with version 2 memory info: ``used`` leaves out reserved memory."""

    nvmlMemory_v2 = object()

    def __init__(self, devices: list[Dev], v2_supported: bool = True) -> None:
        super().__init__(devices)
        self.v2_supported = v2_supported

    def nvmlDeviceGetMemoryInfo(self, h: int, version: object = None) -> Any:
        mem = super().nvmlDeviceGetMemoryInfo(h)
        if version is None:
            return mem
        if not self.v2_supported:
            raise NVMLError_Unknown()
        reserved = GiB // 2
        return SimpleNamespace(total=mem.total, used=mem.used - reserved, free=mem.free)


def test_memory_info_v2_matches_nvidia_smi_used() -> None:
    d = GpuProbe(FakeNVMLv2([Dev()])).sample().devices[0]
    assert d.vram_used_bytes == 20 * GiB - GiB // 2 and d.vram_free_bytes == 60 * GiB


def test_memory_info_falls_back_to_v1() -> None:
    probe = GpuProbe(FakeNVMLv2([Dev()], v2_supported=False))
    assert probe.sample().devices[0].vram_used_bytes == 20 * GiB
    assert probe.sample().devices[0].vram_used_bytes == 20 * GiB
