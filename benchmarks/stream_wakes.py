"""What streaming a reply costs llama-server itself: its threads' CPU time and wake-ups per token.

Serves the bench demo model (Q4_K_M) with one compute thread, so the thread that decodes is
plainly the busiest one and every other thread's work shows apart. The same fixed-length reply
(``ignore_eos``, temperature 0, no prompt cache) is asked for, interleaved round by round:
  whole     ``stream: false`` (what a quiet reply asks, ``core/quiet_reply.py``);
  streamed  ``stream: true``, read as fast as it comes;
  paced     ``stream: true``, read once a second (the chat pane's pace while no core is idle).
For each, from ``/proc/<pid>/task/*``: the CPU seconds and the context switches (voluntary and
not) of the server's threads other than the decoding one, per 1,000 tokens. With the server's
threads on every core, each such wake-up lands on a core a compute thread needs.

    python benchmarks/stream_wakes.py [--rounds 3] [--tokens 512]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import select
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import proc_counters

from coder_tui.core.config.loader import load_config
from coder_tui.core.demo.build import prepare_demo
from coder_tui.core.server.ports import free_port
from coder_tui.core.server.process import ServerManager

PROMPT = "Write a Python function that parses a CSV file."


def _switches(pid: int) -> dict[str, tuple[float, int]]:
    """Per thread id: (CPU seconds, context switches) so far."""
    return {tid: (cpu, v + n) for tid, (cpu, v, n) in proc_counters.threads(pid).items()}


def ask(port: int, tokens: int, mode: str) -> int:
    """One request over a plain socket; returns the tokens the server says it generated."""
    body = {
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": tokens,
        "ignore_eos": True,
        "temperature": 0,
        "cache_prompt": False,
        "stream": mode != "whole",
    }
    data = json.dumps(body).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
        f"\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head.encode() + data)
        received = bytearray()
        while chunk := sock.recv(1 << 20):
            received += chunk
            if mode == "paced" and not select.select([sock], [], [], 0)[0]:
                time.sleep(1.0)  # drained: wait a second, as the paced chat pane does
    text = received.decode(errors="replace")
    found = re.findall(r'"predicted_n":\s*(\d+)', text)
    if not found:
        raise RuntimeError(f"no timings in the {mode} answer: {text[-200:]!r}")
    return int(found[-1])


async def measure(port: int, pid: int, tokens: int, mode: str) -> tuple[float, float]:
    """(CPU ms, context switches) per 1,000 tokens of the threads other than the decoding one."""
    before = _switches(pid)
    n = await asyncio.to_thread(ask, port, tokens, mode)
    after = _switches(pid)
    deltas = sorted(
        (
            (cpu - before.get(tid, (0.0, 0))[0], switches - before.get(tid, (0.0, 0))[1])
            for tid, (cpu, switches) in after.items()
        ),
        reverse=True,
    )
    others = deltas[1:]  # the busiest thread decodes
    per = 1000 / n
    return 1000 * sum(c for c, _ in others) * per, sum(s for _, s in others) * per


async def run(rounds: int, tokens: int, tmp: Path) -> dict[str, list[tuple[float, float]]]:
    demo = prepare_demo(tmp / "demo", "bench", ("Q4_K_M",), port=free_port())
    config = load_config(demo.config_path)
    profile = replace(config.profile("q4_k_m"), threads=1)
    port = free_port()
    mgr = ServerManager(replace(config.server, port=port), log_dir=tmp / "logs")
    await mgr.start(profile)
    modes = ["whole", "streamed", "paced"]
    results: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
    try:
        assert mgr.pid is not None
        await asyncio.to_thread(ask, port, 16, "whole")  # warm-up
        for r in range(rounds):
            for mode in modes[r % 3 :] + modes[: r % 3]:
                cpu_ms, switches = await measure(port, mgr.pid, tokens, mode)
                results[mode].append((cpu_ms, switches))
                print(
                    f"round {r + 1}: {mode}: {cpu_ms:.0f} ms CPU, {switches:.0f} switches "
                    "per 1,000 tokens",
                    file=sys.stderr,
                )
    finally:
        await mgr.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument(
        "--append-to",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "docs" / "performance.md",
    )
    args = parser.parse_args()
    results = asyncio.run(run(args.rounds, args.tokens, Path(tempfile.mkdtemp(prefix="wakes-"))))
    lines = [
        f"### stream_wakes ({time.strftime('%Y-%m-%d %H:%M')}, bench demo Q4_K_M, 1 compute "
        f"thread, {args.tokens} tokens, {args.rounds} rounds, {os.cpu_count()} CPUs)",
        "",
        "| request | server threads besides the decoding one: CPU ms per 1,000 tokens | "
        "their context switches per 1,000 tokens |",
        "| --- | --- | --- |",
    ]
    for mode, runs in results.items():
        cpu = statistics.median(c for c, _ in runs)
        switches = statistics.median(s for _, s in runs)
        lines.append(f"| {mode} | {cpu:.0f} | {switches:.0f} |")
    text = "\n".join(lines)
    print(text)
    with args.append_to.open("a", encoding="utf-8") as fh:
        fh.write("\n" + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
