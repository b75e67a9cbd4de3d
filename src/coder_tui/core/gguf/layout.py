"""The layout of a GGUF model file: per-layer bytes of experts, router, attention, norms; hparams.

Owns ``read_layout`` (``gguf.GGUFReader`` behind a bounds-checked walk of the header, so a truncated
or corrupted file is a ``UserError`` naming it, never a crash or a hang) and the frozen
``GgufLayout``. Where those bytes sit and what they cost per token is ``metrics/moe.py``'s.
"""

from __future__ import annotations

import mmap
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from coder_tui.core.errors import UserError

_LAYER_RE = re.compile(r"^blk\.(\d+)\.(.+)$")
_MAX_DIMS = 8


@dataclass(frozen=True)
class TensorInfo:
    """One tensor: ``shape`` in ggml order (``ne0`` first, so experts are the last dimension)."""

    name: str
    quant: str
    """ggml type name: F16, Q8_0, Q4_K, IQ2_XXS..."""
    shape: tuple[int, ...]
    n_bytes: int


def tensor_kind(name: str) -> str:
    """Class of a per-layer tensor by its name after ``blk.N.``.

    One of ``experts`` (``ffn_*_exps``), ``router`` (``ffn_gate_inp``), ``shared`` (``*_shexp``),
    ``norm``, ``attention`` and ``other`` (dense FFN and anything else).
    """
    base = name.removesuffix(".weight").removesuffix(".bias")
    if base.endswith("_exps") or base.endswith("_chexps"):
        return "experts"
    if "shexp" in base:
        return "shared"
    if base == "ffn_gate_inp":
        return "router"
    if base.endswith("norm"):
        return "norm"
    if base.startswith("attn_"):
        return "attention"
    return "other"


@dataclass(frozen=True)
class LayerLayout:
    """The tensors of one repeating layer ``blk.N`` and their bytes by kind."""

    index: int
    tensors: tuple[TensorInfo, ...]
    expert_bytes: int
    """All experts of ``ffn_{gate,up,down,gate_up}_exps`` together."""
    expert_bytes_per_expert: int
    """One expert's gate + up + down slices (``expert_bytes / expert_count``)."""
    router_bytes: int
    shared_expert_bytes: int
    attention_bytes: int
    norm_bytes: int
    other_bytes: int

    @property
    def non_expert_bytes(self) -> int:
        """Bytes read in full for every token (everything but the routed experts)."""
        return (
            self.router_bytes
            + self.shared_expert_bytes
            + self.attention_bytes
            + self.norm_bytes
            + self.other_bytes
        )


@dataclass(frozen=True)
class GgufLayout:
    """What coder-tui needs of a model file: hparams, per-layer bytes, quant types."""

    path: Path
    file_size_bytes: int
    architecture: str
    name: str | None
    block_count: int
    expert_count: int | None
    expert_used_count: int | None
    embedding_length: int | None
    head_count: int | None
    head_count_kv: int | None
    key_length: int | None
    value_length: int | None
    context_length: int | None
    vocab_size: int | None
    layers: tuple[LayerLayout, ...]
    tensors: tuple[TensorInfo, ...]
    """Every tensor in file order, layer tensors included."""
    token_embd_bytes: int
    output_bytes: int
    """``output.weight``, or ``token_embd`` when the model ties them (``output_tied``)."""
    output_norm_bytes: int
    output_tied: bool
    quant_bytes: Mapping[str, int]
    """Bytes per ggml type over all tensors."""

    @property
    def tensor_bytes(self) -> int:
        return sum(t.n_bytes for t in self.tensors)

    @property
    def expert_bytes(self) -> int:
        return sum(layer.expert_bytes for layer in self.layers)


# -- a bounds-checked walk of the header --------------------------------------------------------
# GGUFReader trusts the counts in the file: a flipped bit in an array length makes it loop for
# ~2**63 iterations. This walk checks every count against the bytes left before GGUFReader runs.
_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9


class _Corrupt(Exception):
    pass


class _Walker:
    def __init__(self, data: mmap.mmap, order: str) -> None:
        self.data = data
        self.pos = 0
        self.order = order

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise _Corrupt(f"truncated at byte {self.pos}")
        out = self.data[self.pos : self.pos + n] if n <= 16 else b""  # only numbers are read
        self.pos += n
        return out

    def u32(self) -> int:
        return int(struct.unpack(self.order + "I", self.take(4))[0])

    def u64(self) -> int:
        return int(struct.unpack(self.order + "Q", self.take(8))[0])

    def count(self, min_item_bytes: int) -> int:
        n = self.u64()
        if n * min_item_bytes > len(self.data) - self.pos:
            raise _Corrupt(f"count {n} at byte {self.pos - 8} exceeds the file")
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
            raise _Corrupt(f"unknown value type {kind} at byte {self.pos - 4}")


def _check_header(path: Path) -> None:
    """Walk magic, version, key/values and tensor infos with every length checked."""
    with path.open("rb") as fh:
        head = fh.read(24)
        if len(head) < 24 or head[:4] != b"GGUF":
            raise _Corrupt("not a GGUF file (bad magic)")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            _walk(data, "<" if struct.unpack("<I", head[4:8])[0] & 0xFFFF else ">")


def _walk(data: mmap.mmap, order: str) -> None:
    w = _Walker(data, order)
    w.take(4)
    if w.u32() not in (2, 3):
        raise _Corrupt("unsupported GGUF version")
    n_tensors, n_kv = w.u64(), w.u64()
    if n_kv * 13 > len(data) or n_tensors * 24 > len(data):
        raise _Corrupt("tensor or key count exceeds the file")
    for _ in range(n_kv):
        w.string()
        w.value(w.u32())
    for _ in range(n_tensors):
        w.string()
        n_dims = w.u32()
        if n_dims > _MAX_DIMS:
            raise _Corrupt(f"tensor with {n_dims} dimensions")
        w.take(8 * n_dims + 4 + 8)


# -- reading -------------------------------------------------------------------------------------
def _field(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    return None if field is None else field.contents()


def _int_field(reader: Any, key: str) -> int | None:
    value = _field(reader, key)
    if isinstance(value, list):  # per-layer values (some architectures): the largest matters
        value = max((v for v in value if isinstance(v, int)), default=None)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _layer(index: int, tensors: list[TensorInfo], expert_count: int | None) -> LayerLayout:
    sums = dict.fromkeys(("experts", "router", "shared", "norm", "attention", "other"), 0)
    for t in tensors:
        sums[tensor_kind(t.name.split(".", 2)[2])] += t.n_bytes
    per_expert = sums["experts"] // expert_count if expert_count else 0
    return LayerLayout(
        index=index,
        tensors=tuple(tensors),
        expert_bytes=sums["experts"],
        expert_bytes_per_expert=per_expert,
        router_bytes=sums["router"],
        shared_expert_bytes=sums["shared"],
        attention_bytes=sums["attention"],
        norm_bytes=sums["norm"],
        other_bytes=sums["other"],
    )


def _build(path: Path, reader: Any, size: int) -> GgufLayout:
    import gguf

    arch = _field(reader, "general.architecture")
    if not isinstance(arch, str):
        raise _Corrupt("no general.architecture")
    tensors: list[TensorInfo] = []
    for t in reader.tensors:
        if int(t.n_bytes) < 0 or int(t.data_offset) + int(t.n_bytes) > size:
            raise _Corrupt(f"tensor {t.name} runs past the end of the file (truncated?)")
        quant = gguf.GGMLQuantizationType(int(t.tensor_type)).name
        tensors.append(TensorInfo(t.name, quant, tuple(int(d) for d in t.shape), int(t.n_bytes)))
    expert_count = _int_field(reader, f"{arch}.expert_count")
    by_layer: dict[int, list[TensorInfo]] = {}
    for t in tensors:
        m = _LAYER_RE.match(t.name)
        if m:
            by_layer.setdefault(int(m.group(1)), []).append(t)
    block_count = _int_field(reader, f"{arch}.block_count")
    if block_count is None:
        block_count = max(by_layer, default=-1) + 1
    if any(i >= block_count for i in by_layer) or block_count > max(len(tensors), 1):
        raise _Corrupt(f"block_count {block_count} does not match the tensors")
    named = {t.name: t for t in tensors}
    embd = named.get("token_embd.weight")
    output = named.get("output.weight")
    quant_bytes: dict[str, int] = {}
    for t in tensors:
        quant_bytes[t.quant] = quant_bytes.get(t.quant, 0) + t.n_bytes
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    vocab = len(tokens.data) if tokens is not None else (embd.shape[-1] if embd else None)
    name = _field(reader, "general.name")
    return GgufLayout(
        path=path,
        file_size_bytes=size,
        architecture=arch,
        name=name if isinstance(name, str) else None,
        block_count=block_count,
        expert_count=expert_count,
        expert_used_count=_int_field(reader, f"{arch}.expert_used_count"),
        embedding_length=_int_field(reader, f"{arch}.embedding_length"),
        head_count=_int_field(reader, f"{arch}.attention.head_count"),
        head_count_kv=_int_field(reader, f"{arch}.attention.head_count_kv"),
        key_length=_int_field(reader, f"{arch}.attention.key_length"),
        value_length=_int_field(reader, f"{arch}.attention.value_length"),
        context_length=_int_field(reader, f"{arch}.context_length"),
        vocab_size=vocab,
        layers=tuple(_layer(i, by_layer.get(i, []), expert_count) for i in range(block_count)),
        tensors=tuple(tensors),
        token_embd_bytes=embd.n_bytes if embd else 0,
        output_bytes=output.n_bytes if output else (embd.n_bytes if embd else 0),
        output_norm_bytes=sum(t.n_bytes for t in tensors if t.name.startswith("output_norm.")),
        output_tied=output is None and embd is not None,
        quant_bytes=MappingProxyType(quant_bytes),
    )


def read_layout(path: Path) -> GgufLayout:
    """Read ``path``'s layout; a missing, truncated or corrupted file is a ``UserError``.

    Reads the header only (the weights stay on disk, memory-mapped); a 150k-token vocabulary
    takes GGUFReader a second or two, so callers on an event loop run this in a thread.
    """
    import gguf  # heavy import kept out of module import time

    try:
        size = path.stat().st_size
        _check_header(path)
        reader = gguf.GGUFReader(path)
        return _build(path, reader, size)
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {(exc.strerror or str(exc)).lower()}") from None
    except _Corrupt as exc:
        raise UserError(f"{path}: not a readable GGUF file: {exc}") from None
    except ValueError as exc:
        # GGUFReader maps each tensor over the file: data cut short cannot take its shape.
        if "reshape" in str(exc) or "buffer is smaller" in str(exc):
            raise UserError(
                f"{path}: not a readable GGUF file: tensor data runs past the end of the file "
                f"(truncated? {size} bytes)"
            ) from None
        raise UserError(f"{path}: not a readable GGUF file: ValueError: {exc}") from None
    except Exception as exc:  # GGUFReader on bad data: KeyError, IndexError, ...
        raise UserError(f"{path}: not a readable GGUF file: {type(exc).__name__}: {exc}") from None
