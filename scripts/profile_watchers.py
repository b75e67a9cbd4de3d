"""Where coder-tui's CPU goes while it watches a model that has every core: py-spy profiles.

Starts the bench demo model with its threads on every core, then for the dashboard (F4) and for
chatting records this process with ``py-spy`` (raw folded stacks, idle frames dropped) while a long
generation runs, and prints the top frames of each. Used on the GPU host (through
``scripts/gpu_profile_watchers.sh``), where NVML and the PCIe thread take part.

    python scripts/profile_watchers.py OUT_DIR [--tokens 4096] [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import observer

from coder_tui.core.config import load_config
from coder_tui.core.demo import prepare_demo
from coder_tui.core.server.ports import free_port
from coder_tui.core.server.process import ServerManager


def top(folded: Path, n: int = 45) -> str:
    """The frames with the most samples (inclusive), as shares of the busy samples."""
    total = 0
    counts: collections.Counter[str] = collections.Counter()
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if "epoll" in frames[-1] or "select" in frames[-1] or "wait" in frames[-1]:
            continue
        total += int(count)
        for name in {f.split(" (")[0] + " (" + f.rsplit("/", 1)[-1] for f in frames}:
            counts[name] += int(count)
    rows = [f"busy samples: {total}"]
    rows += [f"{100 * c / max(total, 1):5.1f}% {name}" for name, c in counts.most_common(n)]
    return "\n".join(rows)


async def profiled(name: str, arm: object, out: Path, seconds: int) -> None:
    spy = shutil.which("py-spy") or "py-spy"
    folded = out / f"{name}.txt"
    cmd = [spy, "record", "-p", str(os.getpid()), "-d", str(int(seconds)), "-r", "200"]
    cmd += ["-f", "raw", "-o", str(folded), "--nonblocking", "--threads"]

    async def later() -> subprocess.Popen[bytes]:
        await asyncio.sleep(5.0)  # the app is up (2 s settle, start) and the generation under way
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    starter = asyncio.ensure_future(later())
    speed = await arm()  # type: ignore[operator]
    proc = await starter
    await asyncio.to_thread(proc.wait)
    print(f"== {name}: {speed:.1f} t/s, CPU {observer.LAST_CPU.get(name[0])}")
    print(top(folded) if folded.exists() else "no profile")


async def main_async(out: Path, tokens: int, seconds: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="profile-"))
    demo = prepare_demo(tmp / "demo", "bench", ("Q4_K_M",), port=free_port())
    config = load_config(demo.config_path)
    profile = replace(config.profile("q4_k_m"), threads=os.cpu_count() or 1)
    config = replace(config, server=replace(config.server, port=free_port()))
    mgr = ServerManager(config.server, log_dir=tmp / "logs")
    await mgr.start(profile)
    try:
        url = mgr.url
        await observer.generate(url, 32)
        await profiled(
            "b-dashboard", lambda: observer.arm_dashboard(url, tokens, tmp), out, seconds
        )
        await profiled("c-chat", lambda: observer.arm_chat(url, tokens, tmp, "c"), out, seconds)
    finally:
        await mgr.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    asyncio.run(main_async(args.out, args.tokens, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
