"""Per-layer bytes of a model for one request: weights stored and read per token, and context.

Owns ``LayerBytes`` and ``layer_bytes`` (each layer's non-expert bytes, its expert matrices by
kind (gate, up, down, gate_up) with their bytes stored and read per token, its KV cache and
recurrent state from ``gguf/memory.py``; an MTP block not loaded without draft-MTP is empty) and
``outside_layers`` (the output matrix, the embedding and what else sits outside the layers).
``fit.py`` adds them up for each placement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from coder_tui.core.gguf.layout import GgufLayout, tensor_kind
from coder_tui.core.gguf.memory import (
    ContextPlan,
    context_bytes_by_layer,
    kv_cells,
    kv_layers,
    slots,
)

if TYPE_CHECKING:
    from coder_tui.core.tune.fit import FitRequest

_EXPERT_PART = re.compile(r"ffn_(gate_up|gate|up|down)_(?:ch)?exps")


@dataclass(frozen=True)
class LayerBytes:
    non_expert: int
    experts: dict[str, tuple[int, int]]
    """Expert matrix (gate, up, down, gate_up) -> (bytes stored, bytes read per token)."""
    non_expert_token: int
    kv: int
    rs: int
    kv_cell: int

    @property
    def expert_bytes(self) -> int:
        return sum(b for b, _ in self.experts.values())

    @property
    def expert_token(self) -> int:
        return sum(t for _, t in self.experts.values())


def layer_bytes(layout: GgufLayout, req: FitRequest, kv_cell: int) -> list[LayerBytes]:
    """Per-layer bytes: stored, read per token, context; an unloaded MTP block is empty."""
    expert_count = layout.expert_count or 0
    used = layout.expert_used_count or 0
    plan = ContextPlan(
        kv_cells(req.ctx, req.parallel),
        req.cache_type_k,
        req.cache_type_v,
        req.ubatch,
        slots(req.parallel),
        req.draft_max if req.mtp and layout.nextn_layers else 0,
        req.swa_full,
        req.mtp and bool(layout.nextn_layers),
    )
    context = context_bytes_by_layer(layout, plan)
    kv_idx = set(kv_layers(layout))
    out = []
    for layer in layout.layers:
        if layer.index >= layout.n_layer_trunk and not req.mtp:
            out.append(LayerBytes(0, {}, 0, 0, 0, 0))
            continue
        experts: dict[str, tuple[int, int]] = {}
        for t in layer.tensors:
            if tensor_kind(t.name.split(".", 2)[2]) != "experts":
                continue
            m = _EXPERT_PART.search(t.name)
            part = m.group(1) if m else "other"
            per_token = used * (t.n_bytes // expert_count) if expert_count else t.n_bytes
            stored, tok = experts.get(part, (0, 0))
            experts[part] = (stored + t.n_bytes, tok + per_token)
        kv, rs = context[layer.index]
        out.append(
            LayerBytes(
                layer.non_expert_bytes,
                experts,
                layer.non_expert_bytes,
                kv,
                rs,
                kv_cell if layer.index in kv_idx else 0,
            )
        )
    return out


def outside_layers(layout: GgufLayout) -> tuple[int, int, int]:
    """(output bytes, RAM bytes stored outside the layers, RAM bytes read per token)."""
    output = layout.output_bytes + layout.output_norm_bytes
    ram_stored = ram_token = 0
    for t in layout.tensors:
        if t.name.startswith(("blk.", "output.", "output_norm.")):
            continue
        ram_stored += t.n_bytes
        if t.name == "token_embd.weight":
            ram_token += t.n_bytes // max(t.shape[-1] if t.shape else 1, 1)  # one row
        else:
            ram_token += t.n_bytes
    return output, ram_stored, ram_token
