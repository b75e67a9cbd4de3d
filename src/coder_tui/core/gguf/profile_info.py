"""What the profile picker shows about each profile: model file, size, quant type and split.
Reads only the GGUF header (through ``gguf/layout.py``). A profile as a bench run measured it is
another thing, ``bench/types.py`` ``BenchProfile``; the last measured speed is the picker's."""

from __future__ import annotations

from dataclasses import dataclass

from coder_tui.core.config.loader import Profile
from coder_tui.core.errors import UserError
from coder_tui.core.gguf.layout import read_layout


@dataclass(frozen=True)
class ProfileInfo:
    """One profile's model file as the picker lists it; ``error`` says why the file could not be
    read (the other model fields are then ``None``)."""

    name: str
    model_file: str
    size_bytes: int | None
    quant: str | None
    """The quant type holding most of the file's bytes (the expert tensors in a MoE)."""
    n_layers: int | None
    n_gpu_layers: int | None
    n_cpu_moe: int | None
    error: str | None = None


def profile_info(profile: Profile) -> ProfileInfo:
    """Summary of ``profile``; a missing or unreadable model is reported in ``error``."""
    base = {
        "name": profile.name,
        "model_file": profile.model.name,
        "n_gpu_layers": profile.n_gpu_layers,
        "n_cpu_moe": profile.n_cpu_moe,
    }
    try:
        layout = read_layout(profile.model)
    except UserError as exc:
        return ProfileInfo(size_bytes=None, quant=None, n_layers=None, error=str(exc), **base)  # type: ignore[arg-type]
    quant = max(layout.quant_bytes.items(), key=lambda kv: kv[1])[0] if layout.quant_bytes else None
    return ProfileInfo(
        size_bytes=layout.file_size_bytes,
        quant=quant,
        n_layers=layout.block_count,
        **base,  # type: ignore[arg-type]
    )
