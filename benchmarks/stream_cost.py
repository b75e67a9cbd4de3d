"""What asking a reply streamed costs the server's decode speed, coder-tui aside (issue 21).

The bench demo model (Q4_K_M), threads on every core, ``--ignore-eos``; the same fixed-length
request is sent three ways, interleaved round by round (the order rotated each round), each read
as coder-tui reads a quiet reply (the buffered bytes taken, then a second's sleep):
  whole:       ``stream: false`` on ``/v1/chat/completions`` (the reference);
  chat stream: ``stream: true`` on ``/v1/chat/completions``: per token, the server's HTTP thread
               wakes, parses the whole reply so far into a chat message and sends the difference;
  raw stream:  ``stream: true`` on ``/completion`` with the prompt the server's template makes
               (``/apply-template``): the wake and the send per token, no chat parsing.
So chat against raw tells the parsing's share, raw against whole the wake-and-send's.

Prints one table: per way, the median tokens/s, the geometric mean of its per-round ratios to
whole with a 95 % bootstrap interval, and the server's voluntary context switches per 1,000
tokens (its threads' waits) and its CPU time per 1,000 tokens. Round lines go to stderr.

    python benchmarks/stream_cost.py [--rounds 10] [--tokens 512] [--threads N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
from harness import stats, table
from harness.counters import totals
from harness.server import PROMPT, bench_config, read_streamed, start_server

WAYS = ("whole", "chat stream", "raw stream")


async def ask(client: httpx.AsyncClient, url: str, way: str, tokens: int) -> float:
    """One request ``way``; the server's own decode tokens/s."""
    messages = [{"role": "user", "content": PROMPT}]
    common = {"ignore_eos": True, "temperature": 0, "cache_prompt": False}
    if way == "whole":
        body = {**common, "messages": messages, "max_tokens": tokens}
        resp = await client.post(f"{url}/v1/chat/completions", json=body)
        resp.raise_for_status()
        return float(resp.json()["timings"]["predicted_per_second"])
    if way == "chat stream":
        body = {**common, "messages": messages, "max_tokens": tokens}
        return await read_streamed(client, f"{url}/v1/chat/completions", body)
    prompt = (await client.post(f"{url}/apply-template", json={"messages": messages})).json()
    body = {**common, "prompt": prompt["prompt"], "n_predict": tokens}
    return await read_streamed(client, f"{url}/completion", body)


Turn = tuple[float, float, float]
"""One request: tokens/s, the server's waits and CPU milliseconds per 1,000 tokens."""


async def measure(args: argparse.Namespace, tmp: Path) -> dict[str, list[Turn]]:
    """Per way: each round's ``Turn``."""
    config, profile = bench_config(tmp, threads=args.threads)
    mgr = await start_server(config, profile, tmp)
    out: dict[str, list[Turn]] = {way: [] for way in WAYS}
    deadline = None if args.time_budget_s is None else time.monotonic() + args.time_budget_s
    try:
        async with httpx.AsyncClient(timeout=300, trust_env=False) as client:
            first = time.monotonic()
            for r in range(args.rounds):
                per_round = (time.monotonic() - first) / r if r else 0.0
                if deadline is not None and r and time.monotonic() + per_round > deadline:
                    print(f"stopping after {r} rounds: the time budget", file=sys.stderr)
                    break
                for way in WAYS[r % 3 :] + WAYS[: r % 3]:
                    await asyncio.sleep(0.5)
                    before = totals(mgr.pid) if mgr.pid else None
                    speed = await ask(client, mgr.url, way, args.tokens)
                    spent = totals(mgr.pid) - before if before and mgr.pid else None
                    per_k = 1000 / args.tokens
                    waits = spent.voluntary * per_k if spent else 0.0
                    cpu_ms = 1000 * spent.cpu_s * per_k if spent else 0.0
                    out[way].append((speed, waits, cpu_ms))
                    print(
                        f"round {r + 1}: {way}: {speed:.1f} t/s, {waits:.0f} waits/1k, "
                        f"{cpu_ms:.0f} ms CPU/1k",
                        file=sys.stderr,
                    )
    finally:
        await mgr.stop()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--threads", type=int, help="server threads (default: every core)")
    parser.add_argument("--time-budget-s", type=float, help="start no round likely to end later")
    args = parser.parse_args()
    got = asyncio.run(measure(args, Path(tempfile.mkdtemp(prefix="stream-cost-"))))
    n = min(len(v) for v in got.values())
    rows = []
    for way in WAYS:
        runs = got[way][:n]
        ratio = (
            stats.geometric_mean([t[0] / w[0] for t, w in zip(runs, got["whole"][:n], strict=True)])
            if way != "whole"
            else ""
        )
        rows.append(
            [
                way,
                n,
                f"{stats.median([t[0] for t in runs]):.1f}",
                ratio,
                f"{stats.median([t[1] for t in runs]):.0f}",
                f"{stats.median([t[2] for t in runs]):.0f}",
            ]
        )
    threads = args.threads or os.cpu_count()
    title = (
        f"Stream cost: bench demo Q4_K_M, {threads} server threads on {os.cpu_count()} cores, "
        f"{args.tokens} tokens, {n} rounds"
    )
    header = ["way", "rounds", "median t/s", "to whole", "server waits / 1k tokens"]
    header += ["server CPU ms / 1k tokens"]
    print(table.render(title, header, rows, []))
    return 0


if __name__ == "__main__":
    sys.exit(main())
