"""Where coder-tui's CPU goes while it watches a model that has every core: py-spy profiles.

Starts the bench demo model with its threads on every core, then runs coder-tui in a terminal (as
``benchmarks/observer.py``'s arms (b) and (c), through ``benchmarks/harness``) and records its
process with ``py-spy`` (raw folded
stacks, all threads, idle frames dropped): on the dashboard (F4) while a long generation runs, then
chatting (a quiet reply of the same length). Prints each one's CPU, wake-ups and top frames.
Used on the GPU host (through ``scripts/gpu_profile_watchers.sh``), where NVML and the PCIe thread
take part.

    python scripts/profile_watchers.py OUT_DIR [--tokens 4096] [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from harness.counters import Window  # benchmarks/ is put on the path above
from harness.server import bench_config, generate, start_server
from harness.terminal import (
    ENTER,
    AppHome,
    Terminal,
    app_quit,
    app_up,
    on_dashboard,
    type_prompt,
)


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


async def profiled(name: str, app: Terminal, out: Path, seconds: int) -> None:
    """py-spy on coder-tui's process (all threads, idle frames dropped) for ``seconds``."""
    spy = shutil.which("py-spy") or "py-spy"  # main() checked it is there
    folded = out / f"{name}.txt"
    cmd = [spy, "record", "-p", str(app.proc.pid), "-d", str(int(seconds)), "-r", "200"]
    cmd += ["-f", "raw", "-o", str(folded), "--nonblocking", "--threads"]
    window = Window(app.proc.pid).start()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    await asyncio.to_thread(proc.wait)
    window.stop()
    print(f"== {name}: {window.describe()}")
    print(top(folded) if folded.exists() else "no profile")


async def dashboard(url: str, home: AppHome, out: Path, tokens: int, seconds: int) -> None:
    """coder-tui in a terminal on F4 while the server generates ``tokens``."""
    app = home.attach(url)
    try:
        await on_dashboard(app)
        generation = asyncio.ensure_future(generate(url, tokens))
        await asyncio.sleep(2.0)  # the samplers see no idle core and slow down
        await profiled("b-dashboard", app, out, seconds)
        print(f"   generation: {await generation:.1f} t/s")
    finally:
        await app_quit(app)


async def chat(url: str, home: AppHome, out: Path | None, seconds: int) -> None:
    """coder-tui in a terminal sending a prompt (its reply ``tokens`` long, quiet or not);
    ``out`` None: not profiled (the reply before, after which the next one is quiet)."""
    app = home.attach(url)
    try:
        await app_up(app)
        await type_prompt(app)
        before = home.last_reply()
        app.press(ENTER)
        if out is not None:
            await asyncio.sleep(2.0)
            await profiled("c-chat", app, out, seconds)
        while (reply := home.reply_done_after(before)) is None:
            await asyncio.sleep(0.5)
        quiet = "quiet" if home.last_run_quiet() else "streamed"
        print(f"   reply: {reply[2]} t/s, {quiet}")
    finally:
        await app_quit(app)


async def main_async(out: Path, tokens: int, seconds: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="profile-"))
    config, profile = bench_config(tmp)
    mgr = await start_server(config, profile, tmp)
    try:
        url = mgr.url
        home = AppHome(tmp / "home", config, chat={"max_tokens": tokens, "temperature": 0})
        await dashboard(url, home, out, tokens, seconds)
        await chat(url, home, None, seconds)  # a reply before: quiet next
        await chat(url, home, out, seconds)
    finally:
        await mgr.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()
    if shutil.which("py-spy") is None:
        print("py-spy is not installed (pip install py-spy)", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    asyncio.run(main_async(args.out, args.tokens, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
