"""What this machine measured: RAM bandwidth at the server's thread count, and decode runs per model.

Owns ``ram_bandwidth`` (``metrics/moe.py``'s copy measurement with the threads llama-server will
use, repeated until three runs agree within 5 %, cached per machine and thread count in
``CACHE_DIR/ram_bandwidth.json``, with a label that says what it is), ``record_run`` /
``load_runs`` (decode speeds measured at a placement, from tune, bench or the dashboard, kept per
model file in ``STATE_DIR/decode_runs.json``) and ``traffic_for_args`` / ``vram_for_args`` (what one
token costs, and the VRAM, at any llama-server command line, ``-ot`` rules included, through
``metrics/moe.py``'s placement): for calibrating ``speed.calibrate`` on measured runs and for
putting llama.cpp's own ``--fit`` answer beside ours. Files are written atomically.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coder_tui.core.atomic import write_text_atomic
from coder_tui.core.gguf.layout import GgufLayout
from coder_tui.core.gguf.memory import (
    ContextPlan,
    compute_buffer,
    context_bytes_by_layer,
    kv_cells,
    placement_kind,
    slots,
)
from coder_tui.core.metrics import moe
from coder_tui.core.tune.speed import Measured, Traffic

if TYPE_CHECKING:
    from coder_tui.core.tune.fit import FitRequest

STABLE_SHARE = 0.05
MAX_RUNS = 12
MAX_RUNS_KEPT = 50


def _machine_id() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.node()}|{cpu or platform.processor()}|{os.cpu_count()}"


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class Bandwidth:
    bytes_per_s: float
    threads: int
    runs: int
    measured_at: str
    cached: bool

    @property
    def label(self) -> str:
        when = f"cached from {self.measured_at}" if self.cached else "just now"
        return f"copy bandwidth, {self.threads} threads, {self.runs} runs, {when}"


def ram_bandwidth(
    threads: int | None, cache_dir: Path | None, *, refresh: bool = False
) -> Bandwidth:
    """The copy bandwidth with ``threads`` threads (default: every CPU), cached per machine."""
    n = max(1, threads or os.cpu_count() or 1)
    path = cache_dir / "ram_bandwidth.json" if cache_dir else None
    key = f"{_machine_id()}|{n}"
    data = _read(path) if path else {}
    hit = data.get(key)
    if isinstance(hit, dict) and not refresh and isinstance(hit.get("bytes_per_s"), float):
        return Bandwidth(hit["bytes_per_s"], n, int(hit.get("runs", 0)), str(hit.get("at")), True)
    values: list[float] = []
    while len(values) < MAX_RUNS:
        values.append(moe.measure_ram_bandwidth(size_bytes=256 << 20, threads=n))
        last = sorted(values[-3:])
        if len(last) == 3 and last[-1] - last[0] <= STABLE_SHARE * last[-1]:
            break
    best = max(values[-3:])
    at = time.strftime("%Y-%m-%d %H:%M")
    if path is not None:
        data[key] = {"bytes_per_s": best, "runs": len(values), "at": at}
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True))
    return Bandwidth(best, n, len(values), at, False)


def traffic_for_args(layout: GgufLayout, args: Sequence[str]) -> Traffic:
    """One token's weight reads and CPU<->GPU hand-overs for a llama-server command line."""
    p = moe.placement_from_args(layout, args)
    t = moe.token_traffic(layout, p)
    gpu = set(p.gpu_layers)
    cpu_experts = set(p.cpu_expert_layers)
    splits, prev = 0, False
    for il in range(layout.n_layer_trunk):
        here = il in gpu
        splits += 1 if here != prev else 0
        prev = here
        if here and il in cpu_experts:
            splits += 2
    splits += 1 if p.output_on_gpu != prev else 0
    return Traffic(t.ram_bytes_per_token, t.vram_bytes_per_token, splits)


def _runs_path(state_dir: Path) -> Path:
    return state_dir / "decode_runs.json"


def record_run(
    state_dir: Path, model: Path, args: Sequence[str], tokens_per_s: float, source: str
) -> None:
    """Keep one measured decode speed of ``model`` at the placement ``args``."""
    path = _runs_path(state_dir)
    data = _read(path)
    runs = data.setdefault(str(model.resolve()), [])
    runs.append(
        {"args": list(args), "tokens_per_s": tokens_per_s, "source": source, "at": time.time()}
    )
    del runs[:-MAX_RUNS_KEPT]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(data, indent=1))


def load_runs(state_dir: Path, model: Path, layout: GgufLayout) -> list[Measured]:
    """The measured runs of ``model``, newest per placement, as calibration points."""
    runs = _read(_runs_path(state_dir)).get(str(model.resolve()), [])
    newest: dict[tuple[str, ...], Measured] = {}
    for r in runs if isinstance(runs, list) else []:
        try:
            args = tuple(str(a) for a in r["args"])
            tps = float(r["tokens_per_s"])
        except (KeyError, TypeError, ValueError):
            continue
        label = " ".join(args)
        newest[args] = Measured(label, traffic_for_args(layout, args), tps, str(r.get("source")))
    return list(newest.values())


def vram_for_args(layout: GgufLayout, req: FitRequest, args: Sequence[str]) -> int:
    """Predicted peak VRAM of llama-server at the command line ``args`` (any ``-ot`` rules):
    the weights that land in VRAM, the context of the GPU layers, the compute buffer and the
    CUDA runtime's share, as ``fit.advise`` counts them for its own placements."""
    p = moe.placement_from_args(layout, args)
    weights = moe.token_traffic(layout, p).vram_weight_bytes
    plan = ContextPlan(
        kv_cells(req.ctx, req.parallel),
        req.cache_type_k,
        req.cache_type_v,
        req.ubatch,
        slots(req.parallel),
    )
    gpu = set(p.gpu_layers)
    context = sum(
        kv + rs for il, (kv, rs) in enumerate(context_bytes_by_layer(layout, plan)) if il in gpu
    )
    compute = compute_buffer(
        layout,
        plan.cells,
        req.ubatch,
        n_batch=req.batch,
        flash_attn=req.flash_attn,
        n_seq_max=plan.n_seq_max,
    )
    kind = placement_kind(layout.n_layer_trunk, gpu, set(p.cpu_expert_layers))
    gpu_compute = req.compute_for(compute, kind, op_offload=p.op_offload)
    return weights + context + gpu_compute + req.overhead_bytes
