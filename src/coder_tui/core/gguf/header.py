"""A bounds-checked walk of a GGUF header: magic, version, key/values, tensor infos.

Owns ``check_header`` (a file) and ``header_length`` (bytes, possibly only the start of a file:
where the tensor infos end, or ``None`` when more bytes are needed), which ``layout.py`` runs before
``gguf.GGUFReader`` and ``remote.py`` uses to fetch just enough of a remote file. GGUFReader trusts
the counts in the file: a flipped bit in an array length makes it loop for ~2**63 iterations. This
walk checks every count against the bytes left, so a corrupted file is ``Corrupt``, not a hang.
"""

from __future__ import annotations

import mmap
import stat
import struct
from pathlib import Path

_MAX_DIMS = 8
_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9


class Corrupt(Exception):
    """Not a GGUF header, or one whose counts cannot be right."""


class _Short(Exception):
    """The bytes end before the header does (only when walking a prefix)."""


class _Walker:
    def __init__(self, data: mmap.mmap | bytes, order: str, *, prefix: bool = False) -> None:
        self.data = data
        self.pos = 0
        self.order = order
        self.prefix = prefix

    def take(self, n: int) -> bytes:
        if n >= 0 and self.prefix and self.pos + n > len(self.data):
            raise _Short
        if n < 0 or self.pos + n > len(self.data):
            raise Corrupt(f"truncated at byte {self.pos}")
        out = self.data[self.pos : self.pos + n] if n <= 16 else b""  # only numbers are read
        self.pos += n
        return out

    def u32(self) -> int:
        return int(struct.unpack(self.order + "I", self.take(4))[0])

    def u64(self) -> int:
        return int(struct.unpack(self.order + "Q", self.take(8))[0])

    def count(self, min_item_bytes: int) -> int:
        n = self.u64()
        if n * min_item_bytes > len(self.data) - self.pos and self.prefix and n < 1 << 40:
            raise _Short
        if n * min_item_bytes > len(self.data) - self.pos:
            raise Corrupt(f"count {n} at byte {self.pos - 8} exceeds the file")
        return n

    def string(self) -> None:
        self.take(self.count(1))

    def value(self, kind: int, depth: int = 0) -> None:
        if kind in _SCALAR_SIZES:
            self.take(_SCALAR_SIZES[kind])
        elif kind == _STRING:
            self.string()
        elif kind == _ARRAY and depth < 4:
            item = self.u32()
            if item in _SCALAR_SIZES:
                self.take(self.count(_SCALAR_SIZES[item]) * _SCALAR_SIZES[item])
            else:
                for _ in range(self.count(8)):
                    self.value(item, depth + 1)
        else:
            raise Corrupt(f"unknown value type {kind} at byte {self.pos - 4}")


def check_regular(path: Path) -> None:
    """Refuse what is not a regular file (a FIFO, a device) before anything opens it.

    Opening a FIFO blocks until a writer comes, and ``/dev/zero`` reads forever.
    """
    mode = path.stat().st_mode  # follows symlinks: what a link points to is what is read
    if not stat.S_ISREG(mode):
        kinds = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                 (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                 (stat.S_ISDIR, "a directory"))  # fmt: skip
        kind = next((name for test, name in kinds if test(mode)), "not a regular file")
        raise Corrupt(f"not a GGUF file ({kind})")


def check_header(path: Path) -> None:
    """Walk magic, version, key/values and tensor infos with every length checked."""
    check_regular(path)
    with path.open("rb") as fh:
        head = fh.read(24)
        if len(head) < 24 or head[:4] != b"GGUF":
            raise Corrupt("not a GGUF file (bad magic)")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            _walk(data, "<" if struct.unpack("<I", head[4:8])[0] & 0xFFFF else ">")


def _walk(data: mmap.mmap | bytes, order: str, *, prefix: bool = False) -> int:
    """Walk the header; returns where the tensor infos end."""
    w = _Walker(data, order, prefix=prefix)
    w.take(4)
    if w.u32() not in (2, 3):
        raise Corrupt("unsupported GGUF version")
    n_tensors, n_kv = w.u64(), w.u64()
    if not prefix and (n_kv * 13 > len(data) or n_tensors * 24 > len(data)):
        raise Corrupt("tensor or key count exceeds the file")
    if n_kv > 1 << 24 or n_tensors > 1 << 24:
        raise Corrupt("tensor or key count beyond any model")
    for _ in range(n_kv):
        w.string()
        w.value(w.u32())
    for _ in range(n_tensors):
        w.string()
        n_dims = w.u32()
        if n_dims > _MAX_DIMS:
            raise Corrupt(f"tensor with {n_dims} dimensions")
        w.take(8 * n_dims + 4 + 8)
    return w.pos


def header_length(data: bytes) -> int | None:
    """Bytes from the start of a GGUF file to the end of its tensor infos, from ``data`` alone.

    ``data`` may be just the start of a file: ``None`` means it ends inside the header (fetch
    more). A header that is not GGUF, or whose counts cannot be right, is ``Corrupt``.
    """
    if len(data) < 24:
        return None
    if data[:4] != b"GGUF":
        raise Corrupt("not a GGUF file (bad magic)")
    order = "<" if struct.unpack("<I", data[4:8])[0] & 0xFFFF else ">"
    try:
        return _walk(data, order, prefix=True)
    except _Short:
        return None
