"""Summaries of measured values and the rule that decides whether two profiles really differ.

Owns ``summarize`` (n, mean, median, sample standard deviation, 95 % confidence interval of the
mean), ``delta_pct`` and ``compare`` (delta in percent and Welch's t-test). The one delta
convention, for the bench report and compare mode alike: ``delta_pct(a, b)`` = (B - A) / A in
percent, B read against A, so ``+84.7`` means B is 84.7 % higher than A. The rule, used everywhere
a delta is shown: a difference is **significant** when Welch's two-sided t-test gives p < 0.05 with at least
two good samples on each side. With zero spread on both sides the test degenerates: equal means
are not significant, different means are (every single measurement differed). Fewer than two
samples on a side: never significant. The t distribution is computed here (regularised incomplete
beta function, Numerical Recipes' continued fraction) so the bench needs no SciPy.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

ALPHA = 0.05
"""Significance level of the two-sided test."""


@dataclass(frozen=True)
class Summary:
    """Statistics of one metric over the good samples; ``None`` fields when there are too few."""

    n: int
    mean: float | None
    median: float | None
    stdev: float | None
    """Sample standard deviation (n - 1); ``None`` below two values."""
    ci95_low: float | None
    ci95_high: float | None


@dataclass(frozen=True)
class Comparison:
    """B against A: ``delta_pct`` = (B - A) / A * 100 (positive: B is higher)."""

    delta_pct: float | None
    p_value: float | None
    """Welch's two-sided p; ``None`` when a side has fewer than two values."""
    significant: bool


def summarize(values: Sequence[float]) -> Summary:
    """n, mean, median, stdev and the 95 % confidence interval of the mean of ``values``."""
    n = len(values)
    if n == 0:
        return Summary(0, None, None, None, None, None)
    mean = statistics.fmean(values)
    median = statistics.median(values)
    if n < 2:
        return Summary(n, mean, median, None, None, None)
    sd = statistics.stdev(values)
    half = t_quantile(0.975, n - 1) * sd / math.sqrt(n)
    return Summary(n, mean, median, sd, mean - half, mean + half)


def delta_pct(a: float | None, b: float | None) -> float | None:
    """How much B differs from A, in percent of A: (B - A) / A * 100 (``+84.7``: B is 84.7 %
    higher); ``None`` when either is missing or A is zero."""
    if a is None or b is None or a == 0:
        return None
    return (b - a) / a * 100.0


def delta_note(a: str, b: str) -> str:
    """The line under a table of deltas that says how to read them."""
    return f"Delta = ({b} - {a}) / {a}: positive means {b} is higher."


def welch_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided p-value of Welch's t-test for equal means; ``None`` below two values a side."""
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return None
    ma, mb = statistics.fmean(a), statistics.fmean(b)
    va, vb = statistics.variance(a) / na, statistics.variance(b) / nb
    if va + vb == 0:
        return 1.0 if ma == mb else 0.0
    t = (ma - mb) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    return t_two_sided_p(t, df)


def compare(a: Sequence[float], b: Sequence[float], alpha: float = ALPHA) -> Comparison:
    """Delta of the mean of ``b`` against the mean of ``a`` in percent (``delta_pct``) and
    whether it is significant."""
    mean_a = statistics.fmean(a) if a else None
    mean_b = statistics.fmean(b) if b else None
    p = welch_p(a, b)
    return Comparison(delta_pct(mean_a, mean_b), p, p is not None and p < alpha)


# -- the t distribution ---------------------------------------------------------------------------


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom."""
    if math.isinf(t):
        return 0.0
    x = df / (df + t * t)
    return min(1.0, max(0.0, betainc(df / 2.0, 0.5, x)))


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    tail = t_two_sided_p(t, df) / 2.0
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t with ``t_cdf(t, df) == p`` (bisection; 0 < p < 1)."""
    lo, hi = -1e3, 1e3
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(ln_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_cf(a, b, x) / a
    return 1.0 - front * _beta_cf(b, a, 1.0 - x) / b


def _beta_cf(a: float, b: float, x: float) -> float:
    """Continued fraction for the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        step = d * c
        h *= step
        if abs(step - 1.0) < 1e-15:
            break
    return h
