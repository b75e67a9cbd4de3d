"""Summaries of repeated measurements: median, nearest-rank percentile, and the geometric mean of
ratios with a 95 % bootstrap interval (what the observer reports per arm)."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

median = statistics.median


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0-100) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


@dataclass(frozen=True)
class Interval:
    """A geometric mean of ratios and its 95 % bootstrap interval."""

    value: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.value:.3f} ({self.low:.3f}–{self.high:.3f})"


def geometric_mean(ratios: Sequence[float], resamples: int = 4000, seed: int = 1) -> Interval:
    """The geometric mean of ``ratios`` with a 95 % bootstrap interval (``resamples`` draws,
    a fixed seed, so the same rounds always print the same interval)."""
    logs = [math.log(r) for r in ratios]
    rng = random.Random(seed)
    boots = sorted(
        math.exp(statistics.mean(rng.choices(logs, k=len(logs)))) for _ in range(resamples)
    )
    low, high = boots[int(0.025 * resamples)], boots[int(0.975 * resamples) - 1]
    return Interval(math.exp(statistics.mean(logs)), low, high, len(ratios))
