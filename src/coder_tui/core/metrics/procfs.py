"""Linux ``/proc`` reads for the host probe: the same numbers psutil gives, in fewer file reads.

Owns ``read_cpu_times``, ``read_memory``, ``read_swap_io`` and ``read_process``. Each reads one
file with one ``read`` and picks out only the fields ``host`` needs; each returns ``None`` where
``/proc`` is absent or does not parse (another OS, a hardened container), and ``host`` then asks
psutil. Why: ``psutil.virtual_memory`` and ``swap_memory`` parse ``/proc/meminfo`` twice and all of
``/proc/vmstat``, and the process needs three files through ``oneshot``; once a second for the app's
life that was most of the host probe's cost. Units follow psutil: bytes, swap pages of 4 KiB
(psutil's own constant), CPU times in seconds.
"""

from __future__ import annotations

import os

PROC = "/proc"
SWAP_PAGE_BYTES = 4 * 1024
"""psutil's factor for ``pswpin``/``pswpout`` (it does not ask the page size either)."""
_MEMINFO = {b"MemTotal:": 0, b"MemAvailable:": 1, b"SwapTotal:": 2, b"SwapFree:": 3}

try:
    CLOCK_TICKS = float(os.sysconf("SC_CLK_TCK"))
except (AttributeError, ValueError, OSError):  # not POSIX: read_process is never used there
    CLOCK_TICKS = 100.0
try:
    PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
except (AttributeError, ValueError, OSError):
    PAGE_BYTES = 4096


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb", buffering=0) as fh:
            return fh.read(1 << 20)
    except OSError:
        return None


def read_cpu_times(proc: str = PROC) -> list[tuple[float, float]] | None:
    """(busy + idle, idle + iowait) seconds per core from ``/proc/stat``; guest time is inside user
    time already, so it is not added again (as ``host`` did with psutil)."""
    data = _read(f"{proc}/stat")
    if not data:
        return None
    out: list[tuple[float, float]] = []
    try:
        for line in data.split(b"\n"):
            if not line.startswith(b"cpu"):
                if out:
                    break
                continue
            if line[3:4] == b" ":  # the all-cores line
                continue
            f = [int(x) for x in line.split()[1:9]]
            f += [0] * (8 - len(f))
            out.append((sum(f) / CLOCK_TICKS, (f[3] + f[4]) / CLOCK_TICKS))
    except ValueError:
        return None
    return out or None


def read_memory(proc: str = PROC) -> tuple[int, int, int, int] | None:
    """(RAM total, RAM available, swap total, swap free) bytes from one read of ``/proc/meminfo``."""
    data = _read(f"{proc}/meminfo")
    if not data:
        return None
    got = [-1, -1, -1, -1]
    try:
        for line in data.split(b"\n"):
            key, _, rest = line.partition(b" ")
            i = _MEMINFO.get(key)
            if i is not None:
                got[i] = int(rest.split()[0]) * 1024
    except (ValueError, IndexError):
        return None
    if min(got) < 0:  # kernels before 3.14 have no MemAvailable: psutil estimates it
        return None
    return got[0], got[1], got[2], got[3]


def read_swap_io(proc: str = PROC) -> tuple[int, int] | None:
    """Bytes swapped in and out since boot (``pswpin``/``pswpout`` of ``/proc/vmstat``)."""
    data = _read(f"{proc}/vmstat")
    if not data:
        return None
    out = []
    for key in (b"\npswpin ", b"\npswpout "):
        i = data.find(key)
        if i < 0:
            return None
        end = data.find(b"\n", i + len(key))
        try:
            out.append(int(data[i + len(key) : end if end >= 0 else None]) * SWAP_PAGE_BYTES)
        except ValueError:
            return None
    return out[0], out[1]


def read_process(pid: int, proc: str = PROC) -> tuple[str, float, int, int, int] | None:
    """(state letter, user + system CPU seconds, threads, RSS bytes, start time in ticks) of
    ``pid`` from ``/proc/<pid>/stat``; ``None`` if it is gone or unreadable."""
    data = _read(f"{proc}/{pid}/stat")
    if not data:
        return None
    # The command name is in parentheses and may hold spaces or ")": split after the last one.
    rest = data[data.rfind(b")") + 2 :].split()
    try:
        state = rest[0].decode("ascii", "replace")
        cpu_s = (int(rest[11]) + int(rest[12])) / CLOCK_TICKS
        return state, cpu_s, int(rest[17]), int(rest[21]) * PAGE_BYTES, int(rest[19])
    except (ValueError, IndexError):
        return None
