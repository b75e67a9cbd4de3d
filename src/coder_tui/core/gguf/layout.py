"""The layout of a GGUF model file: per-layer bytes of experts, router, attention, norms; hparams.

Owns ``read_layout`` (``gguf.GGUFReader`` behind a bounds-checked walk of the header, so a truncated
or corrupted file is a ``UserError`` naming it, never a crash or a hang; a split model's
``-0000N-of-0000M.gguf`` parts are read together, as llama.cpp loads them) and the frozen
``GgufLayout`` with the hparams the memory model needs: which layers are recurrent (Gated DeltaNet,
Mamba: they have ``ssm_*`` tensors), which hold a KV cache, the SSM sizes, sliding-window layers,
per-layer KV head counts and MTP (``nextn``) blocks, which llama.cpp skips at load unless a draft-MTP
context uses them. Where those bytes sit and what they cost per token is ``metrics/moe.py``'s.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from coder_tui.core.errors import UserError
from coder_tui.core.gguf.header import Corrupt, check_header

_LAYER_RE = re.compile(r"^blk\.(\d+)\.(.+)$")
_SPLIT_RE = re.compile(r"^(?P<stem>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")
_MAX_DIMS = 8
_SWA_PATTERN = {"gemma2": 2, "gemma3": 6, "cohere2": 4, "gpt-oss": 2}
"""``n_pattern`` of architectures whose GGUF gives a sliding window but no pattern key (every
``n_pattern``-th layer has full attention; ``llama-model.cpp`` ``load_swa_pattern`` callers)."""


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
    ``norm``, ``attention``, ``nextn`` (an MTP block's own head) and ``other`` (dense FFN, SSM and
    anything else).
    """
    base = name.removesuffix(".weight").removesuffix(".bias")
    if base.startswith("nextn."):
        return "nextn"
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
class SsmShape:
    """A recurrent layer's state sizes (``ssm.*`` keys; llama.cpp ``llama_hparams``)."""

    d_conv: int
    d_inner: int
    d_state: int
    n_group: int
    dt_rank: int

    @property
    def conv_values(self) -> int:
        """``n_embd_r``: the conv state, ``(d_conv - 1) * (d_inner + 2 * n_group * d_state)``."""
        return max(self.d_conv - 1, 0) * (self.d_inner + 2 * self.n_group * self.d_state)

    @property
    def state_values(self) -> int:
        """``n_embd_s``: the SSM / delta-rule state, ``d_state * d_inner``."""
        return self.d_state * self.d_inner


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
    parts: tuple[Path, ...] = ()
    """Every file of a split model, in order (one entry for a single file)."""
    nextn_layers: int = 0
    """MTP blocks at the end (``nextn_predict_layers``): not loaded unless draft-MTP uses them."""
    recurrent_layers: tuple[int, ...] = ()
    kv_layer_indices: tuple[int, ...] = ()
    """Trunk layers with a KV cache (attention, not recurrent)."""
    ssm: SsmShape | None = None
    sliding_window: int | None = None
    swa_layers: tuple[int, ...] = ()
    head_count_kv_layers: tuple[int, ...] = ()
    """Per-layer KV heads where the GGUF gives an array (empty: ``head_count_kv`` for all)."""

    @property
    def n_layer_trunk(self) -> int:
        """The layers a normal decode runs (``n_layer()`` in llama.cpp): all but the MTP blocks."""
        return self.block_count - self.nextn_layers

    def is_mtp_tensor(self, name: str) -> bool:
        """Whether ``name`` belongs to an MTP block (skipped at load without draft-MTP)."""
        m = _LAYER_RE.match(name)
        return m is not None and int(m.group(1)) >= self.n_layer_trunk

    @property
    def tensor_bytes(self) -> int:
        return sum(t.n_bytes for t in self.tensors)

    @property
    def expert_bytes(self) -> int:
        return sum(layer.expert_bytes for layer in self.layers)


# -- reading -------------------------------------------------------------------------------------
def _field(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    return None if field is None else field.contents()


def _int_field(reader: Any, key: str) -> int | None:
    value = _field(reader, key)
    if isinstance(value, list):  # per-layer values (some architectures): the largest matters
        value = max((v for v in value if isinstance(v, int)), default=None)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _int_list(reader: Any, key: str) -> list[int]:
    value = _field(reader, key)
    if isinstance(value, list):
        return [int(v) for v in value if isinstance(v, (int, bool))]
    return []


def _layer(index: int, tensors: list[TensorInfo], expert_count: int | None) -> LayerLayout:
    sums = dict.fromkeys(("experts", "router", "shared", "norm", "attention", "other"), 0)
    for t in tensors:
        kind = tensor_kind(t.name.split(".", 2)[2])
        sums["other" if kind == "nextn" else kind] += t.n_bytes
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


_KV_TENSORS = ("attn_k.", "attn_k_b.", "attn_kv_a_mqa.", "attn_qkv.")


def _layer_kinds(
    by_layer: dict[int, list[TensorInfo]], trunk: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(recurrent layers, KV layers) of the trunk, from each layer's tensors.

    A layer with ``ssm_*`` tensors is recurrent (Mamba, Gated DeltaNet); its ``attn_qkv`` is the
    delta rule's projection, not attention. A layer with K (or a fused QKV outside a recurrent
    layer, or MLA's compressed KV) holds a KV cache. Falcon-H1's layers are both.
    """
    recurrent, kv = [], []
    for il in range(trunk):
        shorts = [t.name.split(".", 2)[2] for t in by_layer.get(il, [])]
        is_recr = any(n.startswith("ssm_") for n in shorts)
        has_k = any(n.startswith(_KV_TENSORS[:3]) for n in shorts)
        if is_recr:
            recurrent.append(il)
        if has_k or (not is_recr and any(n.startswith("attn_qkv.") for n in shorts)):
            kv.append(il)
    return tuple(recurrent), tuple(kv)


def _ssm(reader: Any, arch: str) -> SsmShape | None:
    values = [_int_field(reader, f"{arch}.ssm.{k}") for k in ("conv_kernel", "inner_size")]
    d_state = _int_field(reader, f"{arch}.ssm.state_size")
    if values[0] is None or values[1] is None or d_state is None:
        return None
    return SsmShape(
        d_conv=values[0],
        d_inner=values[1],
        d_state=d_state,
        n_group=_int_field(reader, f"{arch}.ssm.group_count") or 0,
        dt_rank=_int_field(reader, f"{arch}.ssm.time_step_rank") or 0,
    )


def _swa_layers(reader: Any, arch: str, trunk: int) -> tuple[int | None, tuple[int, ...]]:
    window = _int_field(reader, f"{arch}.attention.sliding_window")
    if not window:
        return None, ()
    flags = _int_list(reader, f"{arch}.attention.sliding_window_pattern")
    if flags:
        return window, tuple(i for i, f in enumerate(flags[:trunk]) if f)
    n = _int_field(reader, f"{arch}.attention.sliding_window_pattern") or _SWA_PATTERN.get(arch)
    if n is None:
        return window, ()
    return window, tuple(i for i in range(trunk) if n == 0 or i % n < n - 1)


def _tensors(reader: Any, size: int) -> list[TensorInfo]:
    import gguf

    out = []
    for t in reader.tensors:
        if int(t.n_bytes) < 0 or int(t.data_offset) + int(t.n_bytes) > size:
            raise Corrupt(f"tensor {t.name} runs past the end of the file (truncated?)")
        quant = gguf.GGMLQuantizationType(int(t.tensor_type)).name
        out.append(TensorInfo(t.name, quant, tuple(int(d) for d in t.shape), int(t.n_bytes)))
    return out


def _build(parts: list[Path], reader: Any, tensors: list[TensorInfo], size: int) -> GgufLayout:
    arch = _field(reader, "general.architecture")
    if not isinstance(arch, str):
        raise Corrupt("no general.architecture")
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
        raise Corrupt(f"block_count {block_count} does not match the tensors")
    nextn = min(_int_field(reader, f"{arch}.nextn_predict_layers") or 0, block_count)
    trunk = block_count - nextn
    recurrent, kv = _layer_kinds(by_layer, trunk)
    window, swa = _swa_layers(reader, arch, trunk)
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
        path=parts[0],
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
        parts=tuple(parts),
        nextn_layers=nextn,
        recurrent_layers=recurrent,
        kv_layer_indices=kv,
        ssm=_ssm(reader, arch),
        sliding_window=window,
        swa_layers=swa,
        head_count_kv_layers=tuple(_int_list(reader, f"{arch}.attention.head_count_kv")),
    )


def split_parts(path: Path) -> list[Path]:
    """``path``'s split parts (``NAME-00001-of-00003.gguf`` names every part), or ``[path]``."""
    m = _SPLIT_RE.match(path.name)
    if not m:
        return [path]
    count = int(m.group("count"))
    if count < 1 or int(m.group("no")) > count:
        return [path]
    stem = m.group("stem")
    return [path.with_name(f"{stem}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]


def read_layout(path: Path) -> GgufLayout:
    """Read ``path``'s layout; a missing, truncated or corrupted file is a ``UserError``.

    A split model is read whole: any of its parts names all of them. Reads the headers only (the
    weights stay on disk, memory-mapped); a 150k-token vocabulary takes GGUFReader a few seconds,
    so callers on an event loop run this in a thread.
    """
    import gguf  # heavy import kept out of module import time

    parts = split_parts(path)
    current = path
    try:
        reader = None
        tensors: list[TensorInfo] = []
        size = 0
        for current in parts:
            part_size = current.stat().st_size
            check_header(current)
            part_reader = gguf.GGUFReader(current)
            tensors += _tensors(part_reader, part_size)
            size += part_size
            reader = reader or part_reader
        assert reader is not None
        return _build(parts, reader, tensors, size)
    except OSError as exc:
        raise UserError(f"{current}: cannot read: {(exc.strerror or str(exc)).lower()}") from None
    except Corrupt as exc:
        raise UserError(f"{current}: not a readable GGUF file: {exc}") from None
    except ValueError as exc:
        # GGUFReader maps each tensor over the file: data cut short cannot take its shape.
        if "reshape" in str(exc) or "buffer is smaller" in str(exc):
            raise UserError(
                f"{current}: not a readable GGUF file: tensor data runs past the end of the file "
                f"(truncated?)"
            ) from None
        raise UserError(f"{current}: not a readable GGUF file: ValueError: {exc}") from None
    except Exception as exc:  # GGUFReader on bad data: KeyError, IndexError, ...
        raise UserError(
            f"{current}: not a readable GGUF file: {type(exc).__name__}: {exc}"
        ) from None
