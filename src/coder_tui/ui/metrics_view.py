"""What each dashboard tile says for a metrics snapshot: pure functions, tested without a terminal.

Turns a ``MetricsSnapshot`` into ``TileData`` (text, the graph's series with its scale, level) per
tile, and the one-line strip shown when the terminal is too narrow for tiles, fitted to its width
by dropping the least important parts first. Thresholds live here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from coder_tui.core.metrics.types import Bound, MetricsSnapshot, ServerPhase, Speed
from coder_tui.ui import format as fmt

PER_CORE_BARS = "▁▂▃▄▅▆▇█"

_BOUND_TEXT = {
    # Short enough for one row of the narrowest tile (22 columns): the docs explain each.
    Bound.RAM_BANDWIDTH: "RAM-bound: CPU experts",
    Bound.VRAM_BANDWIDTH: "VRAM-bound: all on GPU",
    Bound.PCIE: "PCIe-bound: copying",
    Bound.GPU_COMPUTE: "GPU compute-bound",
    Bound.NONE: "",
}


def _pct(v: float) -> str:
    return f"{v:.0f} %"


@dataclass(frozen=True)
class TileData:
    text: str
    history: tuple[float | None, ...] | None = None
    """The whole history window's samples, oldest first (``None``: unknown); ``None``: no graph."""
    level: str = "ok"
    ceiling: float | None = None
    """The graph's top (100 for a percentage, the total for memory); ``None``: the data's max."""
    unit: Callable[[float], str] | None = None
    """How the graph's axis writes its scale."""


# Tile ids in display order; the compact dashboard shows the first ones only.
TILES: tuple[tuple[str, str], ...] = (
    ("gen", "generation"),
    ("prompt", "prompt"),
    ("phase", "phase / bound"),
    ("vram", "VRAM"),
    ("moe", "MoE RAM reads"),
    ("pcie", "PCIe rx / tx"),
    ("roofline", "decode roofline"),
    ("kv", "KV cache"),
    ("gpu", "GPU"),
    ("cpu", "host CPU"),
    ("ram", "RAM · swap"),
    ("proc", "server process"),
)


def _tail(snap: MetricsSnapshot, name: str, scale: float = 1.0) -> tuple[float | None, ...]:
    """The whole window of ``name``'s history (gaps kept: a graph leaves them blank)."""
    return tuple(None if v is None else v * scale for v in snap.history.tail(name))


def phase_text(snap: MetricsSnapshot) -> str:
    phase = snap.server.phase if snap.server else ServerPhase.DOWN
    bound = snap.moe.bound if snap.moe else Bound.NONE
    why = _BOUND_TEXT.get(bound, "")
    return f"{phase.value}" + (f"\n{why}" if why and phase in _ACTIVE else "")


_ACTIVE = (ServerPhase.PROMPT, ServerPhase.GENERATING)


def speed_text(speed: Speed) -> str:
    """A speed tile's value. First ``now``: tokens per wall second over the last interval, the
    very value its graph ends on (``core/metrics/speeds.py``). Then, said for what it is, the
    running request's speed so far, or else the last finished request's (per busy second, as the
    server's own timings; of this server run only: a swap or restart starts it at ``–``)."""
    now = speed.now_tokens_per_s
    text = fmt.tokens(now) + (" now" if now is not None else "")
    if speed.request_tokens_per_s is not None:
        text += f"\nthis request {fmt.tokens(speed.request_tokens_per_s)}"
    elif speed.last_request_tokens_per_s is not None:
        text += f"\nlast request {fmt.tokens(speed.last_request_tokens_per_s)}"
    return text


def _speed_tile(snap: MetricsSnapshot, kind: str) -> TileData:
    speed: Speed = getattr(snap.speeds, kind)
    return TileData(speed_text(speed), _tail(snap, f"{kind}_tokens_per_s"), unit=fmt.tokens)


def cpu_text(snap: MetricsSnapshot, per_core: bool = False) -> str:
    """The host CPU tile: the average busy share and, ``per_core``, one bar per core."""
    host = snap.host
    if host is None or host.cpu_percent is None:
        return "–"
    cores = host.cpu_percent_per_core
    text = f"{host.cpu_percent:.0f} % of {len(cores)} threads"
    if per_core and cores:
        top = len(PER_CORE_BARS) - 1
        text += "\n" + "".join(PER_CORE_BARS[round(min(100.0, c) / 100 * top)] for c in cores)
    return text


def tiles(snap: MetricsSnapshot, *, per_core: bool = False) -> dict[str, TileData]:
    """Every tile's text and series for ``snap`` (``per_core``: the CPU tile shows each core)."""
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
                ceiling=float(total) if total else None,
                unit=fmt.size,
            )
            link = dev.pcie_link_bytes_per_s
            rx = dev.pcie_rx_bytes_per_s
            gen_text = f"Gen{dev.pcie_gen} x{dev.pcie_width}" if dev.pcie_gen else ""
            out["pcie"] = TileData(
                f"rx {fmt.rate(rx)} · tx {fmt.rate(dev.pcie_tx_bytes_per_s)}\n"
                f"link {fmt.rate(link)} {gen_text}".rstrip(),
                _tail(snap, "gpu0.pcie_rx_bytes_per_s"),
                fmt.level(rx / link if rx is not None and link else None, 0.6, 0.85),
                unit=fmt.rate,
            )
            util = f"{dev.gpu_util_percent:.0f} %" if dev.gpu_util_percent is not None else "–"
            power = f"{dev.power_w:.0f} W" if dev.power_w is not None else "–"
            temp = f"{dev.temperature_c:.0f} °C" if dev.temperature_c is not None else "–"
            out["gpu"] = TileData(
                f"util {util}\n{power} · {temp}",
                _tail(snap, "gpu0.gpu_util_percent"),
                fmt.level(dev.temperature_c, 80, 88),
                ceiling=100.0,
                unit=_pct,
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
            unit=fmt.rate,
        )
        out["roofline"] = TileData(
            f"ceiling {fmt.tokens(moe.decode_ceiling_tokens_per_s)}\n"
            f"efficiency {fmt.percent(moe.efficiency)}",
            _tail(snap, "efficiency", 100.0),
            ceiling=100.0,
            unit=_pct,
        )

    kv = server.kv_fill_ratio if server else None
    used_tokens = server.kv_used_tokens if server else None
    out["kv"] = TileData(
        f"{fmt.percent(kv)}" + (f" · {used_tokens:,} tokens" if used_tokens is not None else ""),
        _tail(snap, "kv_fill_ratio", 100.0),
        fmt.level(kv, 0.8, 0.95),
        ceiling=100.0,
        unit=_pct,
    )

    out["cpu"] = TileData(
        cpu_text(snap, per_core), _tail(snap, "cpu_percent"), ceiling=100.0, unit=_pct
    )
    host = snap.host
    if host is None:
        out["ram"] = out["proc"] = TileData("–")
    else:
        swap = "SWAPPING" if host.swapping else f"swap {fmt.size(host.swap_used_bytes)}"
        out["ram"] = TileData(
            f"{fmt.size(host.ram_used_bytes)} / {fmt.size(host.ram_total_bytes)}\n{swap}",
            _tail(snap, "ram_used_bytes"),
            ceiling=float(host.ram_total_bytes) or None,
            unit=fmt.size,
            level="high"
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
                ceiling=100.0,  # one core's worth, or more when it uses more
                unit=_pct,
            )
    return out


STRIP_PRIORITY = ("gen", "phase", "kv", "last", "vram", "prompt", "moe")
"""What the one-line strip keeps first when its line is too short for all of it."""


def _last_request(speed: Speed) -> str:
    """The strip's word on the last finished request, while none runs (``""``: nothing)."""
    last = speed.last_request_tokens_per_s
    if last is None or speed.request_tokens_per_s is not None:
        return ""
    return f"last request {fmt.tokens(last)}"


def strip(snap: MetricsSnapshot, width: int | None = None) -> str:
    """One line for narrow terminals: speed, phase, VRAM, RAM traffic and KV fill, in that order,
    fitted to ``width`` by leaving out the parts last in ``STRIP_PRIORITY`` (never cut mid-word)."""
    t = tiles(snap)
    gen, prompt = (t[k].text.split("\n")[0] for k in ("gen", "prompt"))
    vram = t["vram"].text.split("\n")[0]
    parts = {
        "gen": f"gen {gen}",
        "last": _last_request(snap.speeds.generation),
        "prompt": f"prompt {prompt}",
        "phase": t["phase"].text.split("\n")[0],
        "vram": vram if vram.startswith("no ") else f"VRAM {vram}",
    }
    if snap.moe is not None:
        parts["moe"] = f"RAM-MoE {fmt.rate(snap.moe.ram_read_bytes_per_s)}"
    kv = snap.server.kv_fill_ratio if snap.server else None
    if kv is not None:
        parts["kv"] = f"KV {fmt.percent(kv)}"
    kept = [k for k in parts if parts[k]]
    line = " · ".join(parts[k] for k in kept)
    for name in reversed(STRIP_PRIORITY):
        if width is None or len(line) <= width or len(kept) == 1:
            break
        if name in kept:
            kept.remove(name)
            line = " · ".join(parts[k] for k in kept)
    return line
