"""Why a llama-server exited, in words, read from its exit status and last log lines."""

from __future__ import annotations

import signal

_PATTERNS: tuple[tuple[str, str], ...] = (
    ("cudamalloc failed", "ran out of GPU memory (CUDA)"),
    ("out of memory", "ran out of memory"),
    ("failed to allocate", "ran out of memory while allocating buffers"),
    ("unable to allocate", "ran out of memory while allocating buffers"),
    ("no such file or directory", "a file was not found"),
    ("failed to open", "could not open the model file"),
    ("invalid magic", "the model file is not a valid GGUF"),
    ("failed to load model", "failed to load the model"),
    ("error while handling argument", "rejected a command-line option"),
    ("invalid argument", "rejected a command-line option"),
    ("couldn't bind", "could not listen on its port"),
    ("address already in use", "could not listen on its port (address in use)"),
)


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
    lowered = [line.lower() for line in last_lines[-40:]]
    for needle, meaning in _PATTERNS:
        if any(needle in line for line in lowered):
            return f"{status}: {meaning}"
    if returncode is not None and returncode < 0 and -returncode == signal.SIGKILL:
        return f"{status} (possibly the kernel's out-of-memory killer)"
    return status
