"""What each dashboard tile says for a metrics snapshot: pure functions, tested without a terminal.

Turns a ``MetricsSnapshot`` into ``TileData`` (text, sparkline series, level) per tile, and the
one-line strip shown when the terminal is too narrow for tiles. Thresholds live here.
"""

from __future__ import annotations

from dataclasses import dataclass

from coder_tui.core.metrics.types import Bound, MetricsSnapshot, ServerPhase
from coder_tui.ui import format as fmt

SPARK_POINTS = 60

_BOUND_TEXT = {
    Bound.RAM_BANDWIDTH: "RAM-bound: CPU experts read from RAM each token",
    Bound.VRAM_BANDWIDTH: "VRAM-bound: all weights on the GPU",
    Bound.PCIE: "PCIe-bound: CPU experts copied to the GPU per batch",
    Bound.GPU_COMPUTE: "GPU compute: prompt with all weights in VRAM",
    Bound.NONE: "",
}


@dataclass(frozen=True)
class TileData:
    text: str
    history: tuple[float, ...] | None = None
    level: str = "ok"


# Tile ids in display order; the compact dashboard shows the first ones only.
TILES: tuple[tuple[str, str], ...] = (
    ("gen", "generation"),
    ("prompt", "prompt"),
    ("phase", "phase / bound"),
    ("vram", "VRAM"),
    ("moe", "CPU-MoE RAM traffic"),
    ("pcie", "PCIe rx / tx"),
    ("roofline", "decode roofline"),
    ("kv", "KV cache"),
    ("gpu", "GPU util · power · temp"),
    ("ram", "RAM · swap"),
    ("proc", "server process"),
)


def _tail(snap: MetricsSnapshot, name: str) -> tuple[float, ...]:
    return tuple(fmt.series(snap.history.tail(name, SPARK_POINTS)))


def phase_text(snap: MetricsSnapshot) -> str:
    phase = snap.server.phase if snap.server else ServerPhase.DOWN
    bound = snap.moe.bound if snap.moe else Bound.NONE
    why = _BOUND_TEXT.get(bound, "")
    return f"{phase.value}" + (f" · {why}" if why and phase in _ACTIVE else "")


_ACTIVE = (ServerPhase.PROMPT, ServerPhase.GENERATING)


def speed(snap: MetricsSnapshot, kind: str) -> tuple[float | None, str]:
    """Tokens/s for ``kind`` (``generation`` or ``prompt``) and whether it is live.

    While the phase runs, the running request's speed so far (for generation; else the rate over
    the last interval): live. Otherwise the speed of the last
    finished request, per busy second: the same number as the server's own ``timings`` (a rate
    per wall second would be diluted by idle time and mean little after a short reply).
    """
    server = snap.server
    if server is None:
        return None, ""
    phase = ServerPhase.GENERATING if kind == "generation" else ServerPhase.PROMPT
    live = getattr(server, f"{kind}_tokens_per_s")
    if kind == "generation" and server.generation_tokens_per_request_s:
        live = server.generation_tokens_per_request_s
    if server.phase is phase and live:
        return live, "live"
    busy = getattr(server, f"{kind}_tokens_per_busy_s")
    if busy is None:
        busy = next(
            (v for v in reversed(snap.history.tail(f"{kind}_tokens_per_busy_s")) if v), None
        )
    return busy, "last request" if busy is not None else ""


def _speed_tile(snap: MetricsSnapshot, kind: str) -> TileData:
    value, note = speed(snap, kind)
    text = fmt.tokens(value) + (f"\n{note}" if note else "")
    return TileData(text, _tail(snap, f"{kind}_tokens_per_s"))


def tiles(snap: MetricsSnapshot) -> dict[str, TileData]:
    """Every tile's text and series for ``snap``."""
    out: dict[str, TileData] = {}
    server = snap.server
    out["gen"] = _speed_tile(snap, "generation")
    out["prompt"] = _speed_tile(snap, "prompt")
    out["phase"] = TileData(phase_text(snap))

    gpu = snap.gpu
    if not gpu.available or not gpu.devices:
        for key in ("vram", "pcie", "gpu"):
            out[key] = TileData(gpu.reason or "no NVIDIA GPU")
    else:
        dev = gpu.devices[0]
        more = f"  (+{len(gpu.devices) - 1} GPU)" if len(gpu.devices) > 1 else ""
        if dev.lost:
            out["vram"] = out["pcie"] = out["gpu"] = TileData("GPU lost", level="high")
        else:
            used, total = dev.vram_used_bytes, dev.vram_total_bytes
            ratio = used / total if used is not None and total else None
            out["vram"] = TileData(
                f"{fmt.size(used)} / {fmt.size(total)}{more}\nserver {fmt.size(dev.server_vram_bytes)}",
                _tail(snap, "gpu0.vram_used_bytes"),
                fmt.level(ratio, 0.9, 0.97),
            )
            link = dev.pcie_link_bytes_per_s
            rx = dev.pcie_rx_bytes_per_s
            gen_text = f"Gen{dev.pcie_gen} x{dev.pcie_width}" if dev.pcie_gen else ""
            out["pcie"] = TileData(
                f"rx {fmt.rate(rx)} · tx {fmt.rate(dev.pcie_tx_bytes_per_s)}\n"
                f"link {fmt.rate(link)} {gen_text}".rstrip(),
                _tail(snap, "gpu0.pcie_rx_bytes_per_s"),
                fmt.level(rx / link if rx is not None and link else None, 0.6, 0.85),
            )
            util = f"{dev.gpu_util_percent:.0f} %" if dev.gpu_util_percent is not None else "–"
            power = f"{dev.power_w:.0f} W" if dev.power_w is not None else "–"
            temp = f"{dev.temperature_c:.0f} °C" if dev.temperature_c is not None else "–"
            out["gpu"] = TileData(
                f"{util} · {power} · {temp}",
                _tail(snap, "gpu0.gpu_util_percent"),
                fmt.level(dev.temperature_c, 80, 88),
            )

    moe = snap.moe
    if moe is None:
        note = snap.moe_error or "no model layout"
        out["moe"] = out["roofline"] = TileData(note)
    else:
        layers = len(moe.placement.cpu_expert_layers)
        out["moe"] = TileData(
            f"{fmt.rate(moe.ram_read_bytes_per_s)}\n"
            f"{layers} layer(s) of experts in RAM · {fmt.size(moe.traffic.ram_bytes_per_token)}/token",
            _tail(snap, "ram_read_bytes_per_s"),
        )
        out["roofline"] = TileData(
            f"ceiling {fmt.tokens(moe.decode_ceiling_tokens_per_s)}\n"
            f"efficiency {fmt.percent(moe.efficiency)}",
            tuple(v * 100 for v in _tail(snap, "efficiency")),
        )

    kv = server.kv_fill_ratio if server else None
    used_tokens = server.kv_used_tokens if server else None
    out["kv"] = TileData(
        f"{fmt.percent(kv)}" + (f" · {used_tokens:,} tokens" if used_tokens is not None else ""),
        tuple(v * 100 for v in _tail(snap, "kv_fill_ratio")),
        fmt.level(kv, 0.8, 0.95),
    )

    host = snap.host
    if host is None:
        out["ram"] = out["proc"] = TileData("–")
    else:
        swap = "SWAPPING" if host.swapping else f"swap {fmt.size(host.swap_used_bytes)}"
        out["ram"] = TileData(
            f"{fmt.size(host.ram_used_bytes)} / {fmt.size(host.ram_total_bytes)}\n{swap}",
            _tail(snap, "ram_used_bytes"),
            "high"
            if host.swapping
            else fmt.level(
                host.ram_used_bytes / host.ram_total_bytes if host.ram_total_bytes else None,
                0.9,
                0.97,
            ),
        )
        proc = host.server
        if proc is None or not proc.alive:
            out["proc"] = TileData("no server process")
        else:
            cpu = f"CPU {proc.cpu_percent:.0f} %" if proc.cpu_percent is not None else "CPU –"
            out["proc"] = TileData(
                f"{cpu} · RSS {fmt.size(proc.rss_bytes)}\n{proc.threads or '–'} threads",
                _tail(snap, "server_cpu_percent"),
            )
    return out


def strip(snap: MetricsSnapshot) -> str:
    """One line for narrow terminals: speed, phase, VRAM and RAM traffic."""
    t = tiles(snap)
    gen, prompt = (t[k].text.split("\n")[0] for k in ("gen", "prompt"))
    parts = [f"gen {gen}", f"prompt {prompt}", t["phase"].text.split(" · ")[0]]
    vram = t["vram"].text.split("\n")[0]
    parts.append(vram if vram.startswith("no ") else f"VRAM {vram}")
    if snap.moe is not None:
        parts.append(f"RAM-MoE {fmt.rate(snap.moe.ram_read_bytes_per_s)}")
    kv = snap.server.kv_fill_ratio if snap.server else None
    if kv is not None:
        parts.append(f"KV {fmt.percent(kv)}")
    return " · ".join(parts)
