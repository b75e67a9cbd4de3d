"""How much one request's decode speed varies, with the server's threads free or pinned.

The observer compares arms request by request, so its spread comes from how much two requests
with nothing else running differ. This starts two llama-servers of the bench demo model (Q4_K_M,
threads on every core, ``--ignore-eos``): one as the observer runs it, one with each decode
thread bound to one logical CPU (``observer.PINNED``, OpenMP's binding), and sends the same
fixed-length request to them in turn (the idle one sleeps). For each it reports the median
tokens/s, the spread of one request (standard deviation of log tokens/s, in %) and that of the
difference between two consecutive requests to the same server (divided by √2: what a pair of
requests in the observer sees). Nothing is appended to the docs: the observer's run says which
it used.

    python benchmarks/decode_noise.py [--requests 12] [--tokens 512]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import statistics
import sys
import tempfile
from pathlib import Path

import observer

VARIANTS = {"free (as the observer runs it)": None, "pinned (--pin)": observer.PINNED}


async def run(requests: int, tokens: int, tmp: Path) -> dict[str, list[float]]:
    servers = {}
    try:
        for i, (name, env) in enumerate(VARIANTS.items()):
            config, _ = observer.bench_config(tmp, env=env)
            servers[name] = await observer.start_server(config, tmp / f"server-{i}")
        speeds: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for n in range(requests):
            for name, mgr in servers.items():
                await asyncio.sleep(0.5)
                speeds[name].append(await observer.generate(mgr.url, tokens))
                print(f"{n + 1}: {name}: {speeds[name][-1]:.1f} t/s", file=sys.stderr)
        return speeds
    finally:
        for mgr in servers.values():
            await mgr.stop()


def table(speeds: dict[str, list[float]], tokens: int) -> str:
    lines = [
        f"decode noise, {tokens} tokens a request, {len(next(iter(speeds.values())))} requests "
        "each, in turn",
        "",
        "| server | median t/s | one request, sd % | consecutive pair, sd of difference / √2, % |",
        "| --- | --- | --- | --- |",
    ]
    for name, values in speeds.items():
        logs = [math.log(v) for v in values]
        diffs = [b - a for a, b in itertools.pairwise(logs)]
        lines.append(
            f"| {name} | {statistics.median(values):.1f} | {100 * statistics.stdev(logs):.1f} | "
            f"{100 * statistics.stdev(diffs) / math.sqrt(2):.1f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=12)
    parser.add_argument("--tokens", type=int, default=512)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="decode-noise-"))
    speeds = asyncio.run(run(args.requests, args.tokens, tmp))
    print(table(speeds, args.tokens))
    return 0


if __name__ == "__main__":
    sys.exit(main())
