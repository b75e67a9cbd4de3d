"""Why a llama-server exited, in words, read from its exit status and last log lines.

One short reason for the user (``exited with code 1: ran out of GPU memory (CUDA)``): the status,
then the first known cause found in the log, else a hint from the signal. The log lines given are
the server's own (already redacted by ``process.py``); showing them is the caller's business.
"""

from __future__ import annotations

import re
import signal
from pathlib import PurePath

# The model file llama-server could not open, and why (as gguf_init_from_file words it).
_OPEN_FAILED = re.compile(r"failed to open gguf file '([^']+)' \(([^)]+)\)", re.IGNORECASE)

_PATTERNS: tuple[tuple[str, str], ...] = (
    ("cudamalloc failed", "ran out of GPU memory (CUDA)"),
    ("cuda error: out of memory", "ran out of GPU memory (CUDA)"),
    ("std::bad_alloc", "ran out of host memory"),
    ("cannot allocate memory", "ran out of host memory"),
    ("out of memory", "ran out of memory"),
    ("failed to allocate", "ran out of memory while allocating buffers"),
    ("unable to allocate", "ran out of memory while allocating buffers"),
    ("no such file or directory", "a file was not found"),
    ("failed to open", "could not open the model file"),
    ("invalid magic", "the model file is not a valid GGUF"),
    ("gguf_init_from", "the model file is not a valid GGUF (corrupt or truncated)"),
    ("failed to load model", "failed to load the model"),
    ("error while handling argument", "rejected a command-line option"),
    ("invalid argument", "rejected a command-line option"),
    ("unknown argument", "rejected a command-line option"),
    ("couldn't bind", "could not listen on its port"),
    ("address already in use", "could not listen on its port (address in use)"),
)

_SIGNAL_HINTS: dict[int, str] = {
    signal.SIGKILL: "possibly the kernel's out-of-memory killer",
    signal.SIGSEGV: "a crash inside llama-server",
    signal.SIGABRT: "an internal error made it abort",
}


def explain_exit(returncode: int | None, last_lines: tuple[str, ...]) -> str:
    """A short reason such as ``exited with code 1: failed to load the model``."""
    if returncode is None:
        status = "did not exit"
    elif returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        status = f"was killed by {name}"
    else:
        status = f"exited with code {returncode}"
    lines = last_lines[-40:]
    for line in lines:
        match = _OPEN_FAILED.search(line)
        if match:
            why = match[2][:1].lower() + match[2][1:]
            return f"{status}: cannot open the model file {PurePath(match[1]).name} ({why})"
    lowered = [line.lower() for line in lines]
    for needle, meaning in _PATTERNS:
        if any(needle in line for line in lowered):
            return f"{status}: {meaning}"
    if returncode is not None and returncode < 0 and -returncode in _SIGNAL_HINTS:
        return f"{status} ({_SIGNAL_HINTS[-returncode]})"
    return status
