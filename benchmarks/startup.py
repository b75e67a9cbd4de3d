"""Startup guard: ``coder-tui --version``, ``coder-tui profiles check`` and the TUI's first frame.

Each is a fresh process, timed from spawn; the TUI runs in a pseudo-terminal (80x24) and its
first frame is the moment its prompt box and footer ("prompt", "Enter send") have both appeared
in its output. Medians of N interleaved runs, next to ``python -c pass`` measured in the same
run (the interpreter's own share). Targets (issue 10, on a 2-core machine): 0.15 s, 0.3 s, 0.8 s.
The small demo model's config is generated first (``llama-quantize`` needed); no server starts.

    python benchmarks/startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harness import stats, table
from harness.terminal import CTRL_Q, AppHome

from coder_tui.core.demo.build import prepare_demo
from coder_tui.core.server.ports import free_port

PY = sys.executable
TARGETS = {
    "coder-tui --version": 0.15,
    "coder-tui profiles check": 0.3,
    "TUI first frame (80x24)": 0.8,
}


def timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
    return time.perf_counter() - t0


def first_frame(home: AppHome) -> float:
    """Seconds from spawn until the TUI has drawn its prompt box and footer (then Ctrl+Q)."""
    app = home.start("--no-start", size=(80, 24), markers=(b"prompt", b"Enter send"))
    try:
        elapsed = app.marked_s(20.0)
        app.press(CTRL_Q)
        app.proc.wait(5)
    except subprocess.TimeoutExpired:
        pass
    finally:
        app.close()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="startup-"))
    demo = prepare_demo(tmp / "demo", "small", port=free_port())
    home = AppHome(tmp / "home", demo.config_path)
    env = {**os.environ, **home.env}
    check = [PY, "-m", "coder_tui", "profiles", "check", "--config", str(home.config)]
    timed(check, env)  # warms the page cache and the server-capabilities cache
    rows: dict[str, Callable[[], float]] = {
        "python -c pass": lambda: timed([PY, "-c", "pass"], env),
        "coder-tui --version": lambda: timed([PY, "-m", "coder_tui", "--version"], env),
        "coder-tui profiles check": lambda: timed(check, env),
        "TUI first frame (80x24)": lambda: first_frame(home),
    }
    results: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(args.runs):  # interleaved, so machine noise hits every row alike
        for name, measure in rows.items():
            results[name].append(measure())
    out = []
    for name, values in results.items():
        target = TARGETS.get(name)
        med = stats.median(values)
        out.append(
            [
                name,
                f"{med:.3f} s",
                f"{stats.percentile(values, 90):.3f} s",
                "" if target is None else f"≤ {target:.2f} s",
                "" if target is None else ("yes" if med <= target else "no"),
            ]
        )
    header = ["what", f"median of {args.runs}", "p90", "target", "holds"]
    print(table.render("Startup", header, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
