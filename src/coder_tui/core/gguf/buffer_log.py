"""What llama.cpp says it allocated: the buffer lines of a llama-server (or llama-cli) load log.

Owns ``parse_buffers``: the ``NAME model|KV|RS|compute|output buffer size = X MiB`` lines that
``llama_model::load_tensors``, ``llama_kv_cache``, ``llama_memory_recurrent``, ``sched_reserve``
and the output buffer print at ``-lv 4`` (``--verbosity 4``), summed per buffer name and kind, as
``BufferLog``. The memory model (``memory.py``) is checked against these numbers term by term;
the GPU validation scripts and ``tune`` read them to tell the CUDA runtime's own share (NVML's
process figure minus these) from llama.cpp's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

MIB = 1 << 20
_LINE = re.compile(
    r"(?P<name>[A-Za-z0-9_]+)\s+(?P<kind>model|KV|RS|compute|output) buffer size =\s*"
    r"(?P<mib>[0-9.]+) MiB"
)
KINDS = ("model", "KV", "RS", "compute", "output")


@dataclass(frozen=True)
class BufferLog:
    """MiB per (buffer name, kind), e.g. ``("CUDA0", "compute")``; a name like ``CPU_Mapped``
    or ``CUDA_Host`` stays as llama.cpp wrote it."""

    mib: Mapping[tuple[str, str], float]

    def get(self, name: str, kind: str) -> float:
        return self.mib.get((name, kind), 0.0)

    def device(self, prefix: str) -> dict[str, float]:
        """Kind -> MiB over the buffers whose name starts with ``prefix`` (``"CUDA0"``)."""
        out = dict.fromkeys(KINDS, 0.0)
        for (name, kind), mib in self.mib.items():
            if name.startswith(prefix) and not name.endswith("_Host"):
                out[kind] += mib
        return out

    def total_mib(self, prefix: str) -> float:
        return sum(self.device(prefix).values())

    @property
    def empty(self) -> bool:
        return not self.mib


def parse_buffers(text: str, *, last_load: bool = True) -> BufferLog:
    """The buffer lines of ``text``; with ``last_load``, only those after the last
    ``load_tensors: loading model tensors`` line (one log file can hold several loads)."""
    if last_load:
        cut = text.rfind("load_tensors: loading model tensors")
        text = text[cut:] if cut >= 0 else text
    found: dict[tuple[str, str], float] = {}
    for m in _LINE.finditer(text):
        key = (m.group("name"), m.group("kind"))
        found[key] = found.get(key, 0.0) + float(m.group("mib"))
    return BufferLog(MappingProxyType(found))
