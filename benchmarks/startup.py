"""Startup times: ``coder-tui --version``, ``coder-tui profiles check``, and the TUI's first frame.

Each is a fresh process, timed from spawn; the TUI runs in a pseudo-terminal (80x24) and its
first painted frame is the moment the prompt box appears in its output. Medians of N runs, next
to ``python -c pass`` measured in the same run (the interpreter's own share). Targets (issue 10,
on this 2-core machine): 0.15 s, 0.3 s, 0.8 s.

    python benchmarks/startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pty
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from coder_tui.core.demo.build import prepare_demo
from coder_tui.core.server.ports import free_port

PY = sys.executable


def timed(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def first_frame(config: Path, env: dict[str, str]) -> float:
    """Seconds from spawn until the TUI has painted its prompt box (then Ctrl+Q)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the TUI on the pty
        os.execve(PY, [PY, "-m", "coder_tui", "--no-start", "--config", str(config)], env)
    t0 = time.perf_counter()
    seen = b""
    elapsed = float("nan")
    try:
        while time.perf_counter() - t0 < 20:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            seen += chunk
            if b"prompt" in seen and b"Enter send" in seen:
                elapsed = time.perf_counter() - t0
                break
        os.write(fd, b"\x11")  # Ctrl+Q
        end = time.monotonic() + 5
        while time.monotonic() < end:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                with contextlib.suppress(OSError):
                    os.read(fd, 65536)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
    finally:
        os.close(fd)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="startup-"))
    demo = prepare_demo(tmp / "demo", "small", port=free_port())
    env = {
        **os.environ,
        "TERM": "xterm-256color",
        "COLUMNS": "80",
        "LINES": "24",
        "XDG_STATE_HOME": str(tmp / "state"),
        "XDG_DATA_HOME": str(tmp / "data"),
    }
    # Warm the page cache and the server-capabilities cache once.
    timed([PY, "-m", "coder_tui", "profiles", "check", "--config", str(demo.config_path)])
    rows = {
        "python -c pass": lambda: timed([PY, "-c", "pass"]),
        "coder-tui --version": lambda: timed([PY, "-m", "coder_tui", "--version"]),
        "coder-tui profiles check": lambda: timed(
            [PY, "-m", "coder_tui", "profiles", "check", "--config", str(demo.config_path)]
        ),
        "TUI first frame (80x24)": lambda: first_frame(demo.config_path, env),
    }
    targets = {
        "coder-tui --version": 0.15,
        "coder-tui profiles check": 0.3,
        "TUI first frame (80x24)": 0.8,
    }
    results: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(args.runs):  # interleaved, so machine noise hits every row alike
        for name, fn in rows.items():
            results[name].append(fn())
    lines = [
        f"### startup ({time.strftime('%Y-%m-%d %H:%M')}, median of {args.runs}, "
        f"{os.cpu_count()} CPUs)",
        "",
        "| what | median | p90 | target | holds |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, values in results.items():
        med = statistics.median(values)
        p90 = sorted(values)[max(0, int(len(values) * 0.9) - 1)]
        target = targets.get(name)
        holds = "" if target is None else ("yes" if med <= target else "no")
        lines.append(
            f"| {name} | {med:.3f} s | {p90:.3f} s | "
            f"{'' if target is None else f'{target:.2f} s'} | {holds} |"
        )
    table = "\n".join(lines)
    print(table)
    perf = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
    with perf.open("a", encoding="utf-8") as fh:
        fh.write("\n" + table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
