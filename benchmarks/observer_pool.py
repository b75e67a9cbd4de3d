"""Pool the rounds of several ``observer.py`` runs: each arm's ratio to (a), and to (d) nvitop.

Reads the ``round N: x: ...: S t/s`` lines that ``observer.py`` prints (its stderr), one file per
run, and prints per arm the median and the geometric mean of the per-round ratios, with a 95 %
bootstrap interval of the geometric mean (4,000 resamples, fixed seed). A round's ratio is taken
only within its own run and round, so the runs' different baselines do not mix.

    python benchmarks/observer_pool.py benchmarks/results/observer-*.log
"""

from __future__ import annotations

import argparse
import math
import random
import re
import statistics
import sys
from pathlib import Path

ROUND = re.compile(r"^round (\d+): (\w): .*?: ([\d.]+) t/s")


def rounds(path: Path) -> list[dict[str, float]]:
    """One dict per round: arm letter -> tokens/s."""
    found: dict[int, dict[str, float]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = ROUND.match(line)
        if m:
            found.setdefault(int(m[1]), {})[m[2]] = float(m[3])
    return [found[k] for k in sorted(found)]


def summary(ratios: list[float], rng: random.Random) -> str:
    logs = [math.log(r) for r in ratios]
    boots = sorted(math.exp(statistics.mean(rng.choices(logs, k=len(logs)))) for _ in range(4000))
    return (
        f"{len(ratios)} | {statistics.median(ratios):.3f} | {math.exp(statistics.mean(logs)):.3f} "
        f"| {boots[100]:.3f}-{boots[3899]:.3f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logs", nargs="+", type=Path)
    args = parser.parse_args()
    all_rounds = [r for path in args.logs for r in rounds(path)]
    rng = random.Random(1)
    print("| arm | against | rounds | median | geometric mean | 95 % interval |")
    print("| --- | --- | --- | --- | --- | --- |")
    arms = sorted({k for r in all_rounds for k in r} - {"a"})
    for base in ("a", "d"):
        for arm in arms:
            if arm == base:
                continue
            ratios = [r[arm] / r[base] for r in all_rounds if arm in r and base in r]
            if ratios:
                print(f"| {arm} | {base} | {summary(ratios, rng)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
