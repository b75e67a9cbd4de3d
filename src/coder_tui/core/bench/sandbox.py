"""Running untrusted model-written Python against unit tests, in a child process with limits.

Owns ``run_tests`` and ``sandbox_level``. Model code never runs in coder-tui's own process. What the
sandbox is, honestly (it is a fence against accidents, not a security boundary against a hostile
program):

* a separate process: ``sys.executable -I`` (isolated mode: no ``PYTHON*`` variables, no user
  site-packages, neither the script's folder nor the working directory on ``sys.path``), in a
  fresh temporary directory that is its working directory and is deleted afterwards;
* the environment scrubbed to ``PATH``, ``HOME`` (the temp dir) and ``LC_ALL``;
* its own session (process group), killed as a group at the wall-clock limit;
* ``resource`` limits set between fork and exec: CPU seconds, address space (1 GiB), size of any
  file written (1 MiB; its output goes to such a file, so a flood of output ends it too), no core
  dumps, and a process count of what the user runs now plus 32 (root ignores that one);
* no network when ``unshare -rn`` works here (a new user and network namespace: not even loopback
  is up). Where it does not (no ``unshare``, user namespaces disabled) the network is **not**
  blocked, and ``sandbox_level()`` says so; the report prints that line.

The file system outside the temp dir is readable and, where the user may write, writable.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ADDRESS_SPACE_BYTES = 1 << 30
FILE_SIZE_BYTES = 1 << 20
EXTRA_PROCESSES = 32
OUTPUT_TAIL_CHARS = 2000

# The pass mark is a fresh nonce per run, so code that prints a fixed line and exits cannot pass.
_HARNESS = """\
ns = {{"__name__": "solution"}}
with open("solution.py", encoding="utf-8") as fh:
    exec(compile(fh.read(), "solution.py", "exec"), ns)
with open("tests.py", encoding="utf-8") as fh:
    exec(compile(fh.read(), "tests.py", "exec"), ns)
print({mark!r})
"""


@dataclass(frozen=True)
class SandboxResult:
    """How the tests went: ``reason`` is ``passed``, ``failed``, ``timeout`` or ``output too large``."""

    passed: bool
    reason: str
    returncode: int | None
    output_tail: str


@functools.lru_cache(maxsize=1)
def _unshare_argv() -> tuple[str, ...]:
    """``("unshare", "-rn", "--")`` when a network namespace can be made here, else ``()``."""
    exe = shutil.which("unshare")
    if exe is None:
        return ()
    try:
        done = subprocess.run(  # noqa: S603 (constant argv; unshare's path from shutil.which)
            [exe, "-rn", "--", "true"], capture_output=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ()
    return (exe, "-rn", "--") if done.returncode == 0 else ()


def network_blocked() -> bool:
    """Whether sandboxed code runs without a network (``unshare -rn`` works here)."""
    return bool(_unshare_argv())


def sandbox_level() -> str:
    """One line for reports: what the sandbox does on this machine."""
    net = "no network (unshare -rn)" if network_blocked() else "network NOT blocked (no unshare)"
    return (
        f"subprocess python -I in a temp dir, scrubbed env, rlimits (CPU, 1 GiB memory, 1 MiB "
        f"files, processes), wall-clock limit, {net}"
    )


def _user_process_count() -> int:
    try:
        import psutil

        uid = os.getuid()
        return sum(1 for p in psutil.process_iter(["uids"]) if p.info["uids"].real == uid)
    except Exception:
        return 256


def _limits(cpu_s: int, nproc: int) -> Callable[[], None]:
    def apply() -> (
        None
    ):  # runs in the child between fork and exec: no locks, no allocation-heavy work
        import resource

        for which, value in (
            (resource.RLIMIT_CPU, cpu_s),
            (resource.RLIMIT_AS, ADDRESS_SPACE_BYTES),
            (resource.RLIMIT_FSIZE, FILE_SIZE_BYTES),
            (resource.RLIMIT_CORE, 0),
            (resource.RLIMIT_NPROC, nproc),
        ):
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(which, (value, value))

    return apply


def run_tests(code: str, tests: str, *, timeout_s: float = 10.0) -> SandboxResult:
    """Run ``code`` then ``tests`` (assert statements) in the sandbox; passed when both finish.

    Blocking: call it through ``asyncio.to_thread`` from async code.
    """
    with tempfile.TemporaryDirectory(prefix="coder-tui-quality-") as tmp:
        folder = Path(tmp)
        (folder / "solution.py").write_text(code, encoding="utf-8")
        (folder / "tests.py").write_text(tests, encoding="utf-8")
        mark = f"tests passed {secrets.token_hex(8)}"
        (folder / "harness.py").write_text(_HARNESS.format(mark=mark), encoding="utf-8")
        argv = [*_unshare_argv(), sys.executable, "-I", "harness.py"]
        env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "LC_ALL": "C.UTF-8"}
        out_path = folder / "output.txt"
        with out_path.open("wb") as out:
            proc = subprocess.Popen(  # noqa: S603 (argv list, no shell; sandboxed python -I)
                argv,
                cwd=tmp,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_limits(int(timeout_s) + 1, _user_process_count() + EXTRA_PROCESSES),
            )
            timed_out = False
            try:
                code_ = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)  # the child and anything it forked
                code_ = proc.wait()
        # Python ignores SIGXFSZ: a write past the limit fails with EFBIG instead, so look at the size.
        flooded = out_path.stat().st_size >= FILE_SIZE_BYTES
        text = out_path.read_text(encoding="utf-8", errors="replace")
    tail = text[-OUTPUT_TAIL_CHARS:]
    if timed_out or code_ == -signal.SIGXCPU:
        return SandboxResult(False, "timeout", None, tail)
    if flooded or code_ == -signal.SIGXFSZ:
        return SandboxResult(False, "output too large", code_, tail)
    passed = code_ == 0 and text.rstrip().endswith(mark)
    return SandboxResult(passed, "passed" if passed else "failed", code_, tail)
