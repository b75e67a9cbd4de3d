"""Decode speed of a placement: the roofline (a ceiling) and a prediction calibrated on measured runs.

Owns ``Traffic`` (what one token costs a placement: weight bytes read from RAM and VRAM, and the
number of CPU<->GPU hand-overs in its graph), ``roofline_tokens_per_s``, ``Measured`` (one run's
speed at a known placement: from bench, tune or the dashboard's decode records), ``SpeedModel`` and
``calibrate``.

The roofline is ``1 / (ram / ram_bw + vram / vram_bw)``: what the memory could feed if nothing else
took time. Real decode pays a fixed cost per token besides (kernel launches, synchronisation, the
CPU threads' barriers, each hand-over between the CPU and the GPU), which on Qwen3-Coder-Next is
most of the time: the roofline said 3.6-3.8 times the measured speed. So the calibrated model is::

    seconds per token = fixed + splits * per_split + ram / ram_bw_eff + vram / vram_bw_eff

``calibrate`` fits it to the measured runs of the same model on this machine: with one run, only
``fixed`` (the bandwidths at their priors: RAM at half the copy bandwidth measured with the
server's threads, VRAM at 70 % of the card's); with two or more at different RAM traffic, ``fixed``
and the effective RAM bandwidth by least squares; with three or more at different hand-over
counts, ``per_split`` too. The model keeps the runs it rests on, so a report can say so and how
far off it is from each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

RAM_BW_PRIOR_SHARE = 0.3
"""Effective read bandwidth of CPU-resident experts as a share of the measured copy bandwidth
(which counts bytes read and written) before any run says otherwise. Decode reads each routed
expert's rows in small slices (10 of 512 experts, about 0.3 MB a matrix for Qwen3-Coder-Next at
IQ2_XXS) spread over the threads, far from a streaming copy: on the H100 host the fit over five
placements gave 25.2 GB/s effective against 81.7 GB/s copy (0.31; docs/gpu-validation.md). It was
0.5, which put the CPU experts' cost into the fixed term when one run calibrated the model."""
VRAM_BW_PRIOR_SHARE = 0.7


@dataclass(frozen=True)
class Traffic:
    """One token's cost at a placement."""

    ram_bytes: int
    vram_bytes: int
    splits: int = 0
    """CPU<->GPU hand-overs in one token's graph (each layer whose experts or attention sit on
    the other device than the previous part adds some)."""


def roofline_tokens_per_s(t: Traffic, ram_bw: float, vram_bw: float) -> float | None:
    """Tokens/s if decode only waited for weight reads."""
    seconds = 0.0
    for n_bytes, bw in ((t.ram_bytes, ram_bw), (t.vram_bytes, vram_bw)):
        if n_bytes:
            if bw <= 0:
                return None
            seconds += n_bytes / bw
    return 1.0 / seconds if seconds > 0 else None


@dataclass(frozen=True)
class Measured:
    """A measured decode speed at a placement, and where it came from."""

    label: str
    traffic: Traffic
    tokens_per_s: float
    source: str = ""


@dataclass(frozen=True)
class SpeedModel:
    """The calibrated per-token time; ``points`` are the runs it was fitted to."""

    fixed_s: float
    per_split_s: float
    ram_bandwidth_bytes_per_s: float
    vram_bandwidth_bytes_per_s: float
    points: tuple[Measured, ...] = ()
    fitted: tuple[str, ...] = ()
    """Which terms the runs decided (the others are priors)."""

    def seconds(self, t: Traffic) -> float:
        return (
            self.fixed_s
            + t.splits * self.per_split_s
            + t.ram_bytes / self.ram_bandwidth_bytes_per_s
            + t.vram_bytes / self.vram_bandwidth_bytes_per_s
        )

    def tokens_per_s(self, t: Traffic) -> float:
        s = self.seconds(t)
        return 1.0 / s if s > 0 else 0.0

    def errors(self) -> list[tuple[str, float, float]]:
        """(label, measured, predicted) for each run it rests on."""
        return [(p.label, p.tokens_per_s, self.tokens_per_s(p.traffic)) for p in self.points]


def _lstsq(rows: list[list[float]], ys: list[float]) -> list[float] | None:
    """Least squares by the normal equations (2-3 unknowns); ``None`` if singular."""
    n = len(rows[0])
    a = [[sum(r[i] * r[j] for r in rows) for j in range(n)] for i in range(n)]
    b = [sum(r[i] * y for r, y in zip(rows, ys, strict=True)) for i in range(n)]
    for col in range(n):  # Gauss-Jordan with partial pivoting
        piv = max(range(col, n), key=lambda r: abs(a[r][col]))
        if abs(a[piv][col]) < 1e-30:
            return None
        a[col], a[piv], b[col], b[piv] = a[piv], a[col], b[piv], b[col]
        for r in range(n):
            if r != col:
                f = a[r][col] / a[col][col]
                a[r] = [x - f * y for x, y in zip(a[r], a[col], strict=True)]
                b[r] -= f * b[col]
    return [b[i] / a[i][i] for i in range(n)]


def calibrate(
    points: Sequence[Measured],
    *,
    ram_copy_bandwidth: float,
    vram_bandwidth: float,
    per_split_prior_s: float = 0.0,
) -> SpeedModel:
    """Fit the per-token model to ``points`` (see the module docstring for what each count
    of runs decides). ``ram_copy_bandwidth`` is the copy bandwidth measured with the server's
    threads; ``vram_bandwidth`` the card's."""
    ram_bw = ram_copy_bandwidth * RAM_BW_PRIOR_SHARE
    vram_bw = vram_bandwidth * VRAM_BW_PRIOR_SHARE
    split = per_split_prior_s
    pts = [p for p in points if p.tokens_per_s > 0]
    if not pts:
        return SpeedModel(0.0, split, ram_bw, vram_bw)
    ys = [1.0 / p.tokens_per_s - p.traffic.vram_bytes / vram_bw for p in pts]
    fitted: tuple[str, ...] = ("fixed",)
    distinct_ram = len({p.traffic.ram_bytes for p in pts}) >= 2
    distinct_split = len({p.traffic.splits for p in pts}) >= 2
    solution = None
    if len(pts) >= 3 and distinct_ram and distinct_split:
        rows = [[1.0, float(p.traffic.splits), float(p.traffic.ram_bytes)] for p in pts]
        solution = _lstsq(rows, ys)
        if solution and all(x >= 0 for x in solution) and solution[2] > 0:
            fixed, split, inv_ram = solution
            return SpeedModel(
                fixed, split, 1.0 / inv_ram, vram_bw, tuple(pts), ("fixed", "per_split", "ram_bw")
            )
    if len(pts) >= 2 and distinct_ram:
        ys2 = [y - p.traffic.splits * split for y, p in zip(ys, pts, strict=True)]
        solution = _lstsq([[1.0, float(p.traffic.ram_bytes)] for p in pts], ys2)
        if solution and solution[0] >= 0 and solution[1] > 0:
            return SpeedModel(
                solution[0], split, 1.0 / solution[1], vram_bw, tuple(pts), ("fixed", "ram_bw")
            )
    # One run (or runs that cannot tell the terms apart): the fixed cost from their mean.
    rest = [
        y - p.traffic.splits * split - p.traffic.ram_bytes / ram_bw
        for y, p in zip(ys, pts, strict=True)
    ]
    fixed = sum(rest) / len(rest)
    if fixed < 0:  # faster than the priors allow: the RAM is faster than assumed
        ram = sum(p.traffic.ram_bytes for p in pts)
        spare = sum(1.0 / p.tokens_per_s - p.traffic.vram_bytes / vram_bw for p in pts)
        ram_bw = ram / spare if spare > 0 and ram else ram_bw
        fixed, fitted = 0.0, ("ram_bw",)
    return SpeedModel(fixed, split, ram_bw, vram_bw, tuple(pts), fitted)
