"""Around the fit advisor: llama.cpp's own answer (``llama-fit-params``) and saving profiles.

Owns ``run_fit_params`` (llama.cpp's fitted arguments for this machine's free device memory with
the same margin, and its memory estimate for a given placement, each under a timeout; never
raises), ``fitted_placement`` (its answer's placement flags, to predict beside ours) and
``save_state_profile`` (adds ``[profiles.NAME]`` to the state file: TOML, read-modify-write with
tomli-w, atomic). The user's ``config.toml`` is never written. The advice itself is ``fit.py``'s;
the flags' spellings are the profile-flag table's (``config/flags.py``).
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coder_tui.core.config.app_state import update_state
from coder_tui.core.config.cmdline import flag_args, strip
from coder_tui.core.errors import UserError
from coder_tui.core.tune.fit import FitOption, FitRequest

FIT_PARAMS_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class DeviceEstimate:
    """One line of ``llama-fit-params --fit-print on``: MiB of model, context and compute."""

    device: str
    model_mib: int
    context_mib: int
    compute_mib: int

    @property
    def total_mib(self) -> int:
        return self.model_mib + self.context_mib + self.compute_mib


@dataclass(frozen=True)
class FitParamsAnswer:
    """What llama-fit-params said; ``error`` set (and the rest empty) when it could not say."""

    fitted_args: str | None = None
    """Its suggested arguments for the free memory of this machine's devices."""
    estimate: tuple[DeviceEstimate, ...] = ()
    """Its memory estimate for our best placement, per device."""
    error: str | None = None


def _common_args(model: Path, req: FitRequest) -> list[str]:
    values: tuple[tuple[str, object], ...] = (
        ("model", model),
        ("ctx", req.ctx),
        ("cache_type_k", req.cache_type_k),
        ("cache_type_v", req.cache_type_v),
        ("ubatch", req.ubatch),
        ("batch", max(req.batch, req.ubatch)),
        ("flash_attn", "on" if req.flash_attn else "off"),
        ("parallel", req.parallel or None),
    )
    return [arg for key, value in values for arg in flag_args(key, value)]


def _run(argv: Sequence[str], timeout_s: float) -> tuple[str | None, str | None]:
    """(stdout, None) on success, else (None, why)."""
    try:
        proc = subprocess.run(  # noqa: S603 (argv list, no shell; llama-fit-params from find_tool)
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout_s,
            check=False,
        )
    except OSError as exc:
        return None, f"cannot run: {exc}"
    except subprocess.TimeoutExpired:
        return None, f"no answer within {timeout_s:g} s"
    if proc.returncode != 0:
        last = [ln for ln in (proc.stderr or "").splitlines() if ln.strip()][-1:]
        return None, f"exit {proc.returncode}" + (f": {last[0].strip()}" if last else "")
    return proc.stdout, None


def parse_estimate(text: str) -> tuple[DeviceEstimate, ...]:
    """Lines ``DEVICE MODEL CONTEXT COMPUTE`` (MiB) of ``--fit-print on``."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and all(p.isdigit() for p in parts[1:]):
            out.append(DeviceEstimate(parts[0], int(parts[1]), int(parts[2]), int(parts[3])))
    return tuple(out)


def run_fit_params(
    binary: Path,
    model: Path,
    req: FitRequest,
    option: FitOption | None,
    *,
    timeout_s: float = FIT_PARAMS_TIMEOUT_S,
) -> FitParamsAnswer:
    """Ask ``llama-fit-params`` (at ``binary``) for its fit, and its estimate of ``option``."""
    common = _common_args(model, req)
    margin = ["--fit-target", str(max(req.margin_bytes >> 20, 0))]
    out, err = _run([str(binary), *common, *margin], timeout_s)
    if out is None:
        return FitParamsAnswer(error=err)
    fitted = next((ln.strip() for ln in out.splitlines() if ln.strip().startswith("-c ")), None)
    estimate: tuple[DeviceEstimate, ...] = ()
    if option is not None:
        printed, _ = _run([str(binary), *common, *option.flags(), "--fit-print", "on"], timeout_s)
        estimate = parse_estimate(printed or "")
    return FitParamsAnswer(fitted_args=fitted or out.strip() or None, estimate=estimate)


def compute_by_kind(
    binary: Path, model: Path, req: FitRequest, n_layer: int, *, timeout_s: float = 30.0
) -> tuple[tuple[str, int], ...]:
    """llama-fit-params' CUDA0 compute estimate for one placement of each kind of
    ``gguf/memory.py``'s ``PLACEMENT_KINDS`` (``n_layer``: the trunk's layers), as
    ``FitRequest.gpu_compute_source`` takes it; kinds it could not answer are left out (the model
    stands in for them)."""
    full = str(n_layer + 1)
    last = "|".join(str(il) for il in range(n_layer - 4, n_layer))
    probes = {
        "gpu": ["-ngl", full],
        "head": ["-ngl", full, "--n-cpu-moe", "2"],
        "tail": ["-ngl", full, "-ot", rf"blk\.({last})\.ffn_(gate|up|down|gate_up)_exps=CPU"],
        "cpu_layers": ["-ngl", str(max(n_layer - 1, 1))],
    }
    out = []
    for kind, flags in probes.items():
        found = compute_of(binary, model, req, flags, timeout_s=timeout_s)
        if found is not None:
            out.append((kind, found))
    return tuple(out)


def compute_of(
    binary: Path, model: Path, req: FitRequest, flags: Sequence[str], *, timeout_s: float = 30.0
) -> int | None:
    """llama-fit-params' CUDA0 compute buffer estimate (bytes) for the placement ``flags``;
    ``None`` without a GPU device in its answer."""
    argv = [str(binary), *_common_args(model, req), *flags, "--fit-print", "on"]
    printed, _ = _run(argv, timeout_s)
    gpu = [e for e in parse_estimate(printed or "") if not e.device.lower().startswith("host")]
    return gpu[0].compute_mib << 20 if gpu else None


def fitted_placement(answer: FitParamsAnswer) -> list[str]:
    """The placement flags of llama-fit-params' answer (``-ngl``, ``-ot``, ...; no ``-c``)."""
    if not answer.fitted_args:
        return []
    try:
        words = shlex.split(answer.fitted_args)
    except ValueError:
        return []
    out: list[str] = []
    skip = False
    for w in words:
        if skip:
            skip = False
        elif w in ("-c", "--ctx-size", "-ts", "--tensor-split"):
            skip = True  # the context is ours; a tensor split is for several devices
        else:
            out.append(w)
    return out


_FIT_SET_RE = re.compile(
    r"set ngl_per_device\[0\]\.\(n_layer, n_part(?:, overflow_type)?\)=\((\d+), (\d+)(?:, (\w+))?\)"
)
_FRACTION_PATTERNS = {
    "ATTN": r"blk\.{il}\.ffn_(gate|up|gate_up|down).*",
    "UP": r"blk\.{il}\.ffn_(gate|gate_up|down).*",
    "GATE": r"blk\.{il}\.ffn_down.*",
    "MOE": r"blk\.{il}\.ffn_(up|down|gate_up|gate)_(ch|)exps",
}
"""llama.cpp's ``get_overflow_pattern`` (``common/fit.cpp``) per layer fraction."""


def placement_from_fit_log(text: str) -> list[str]:
    """The placement llama-server's own ``--fit`` chose, from its log (one device): the last
    ``set ngl_per_device[0].(n_layer, n_part[, overflow_type])=(...)`` line, as ``-ngl``/``-ot``
    flags: the ``n_part`` last layers keep their experts in RAM, the first of them only the part
    its overflow type names. A standalone ``llama-fit-params`` can answer differently, as it sees
    the free memory before the server's CUDA context takes its share. Empty when not found."""
    found = _FIT_SET_RE.findall(text)
    if not found:
        return []
    n_layer, n_part, kind = int(found[-1][0]), int(found[-1][1]), found[-1][2] or "MOE"
    rules = []
    for k, il in enumerate(range(n_layer - n_part, n_layer)):
        pattern = _FRACTION_PATTERNS.get(kind if k == 0 else "MOE", _FRACTION_PATTERNS["MOE"])
        rules.append(pattern.format(il=il) + "=CPU")
    return ["-ngl", str(n_layer), *(["-ot", ",".join(rules)] if rules else [])]


def profile_table(
    model: Path, req: FitRequest, option: FitOption, base: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A ``[profiles.NAME]`` table (config keys) for ``option``; ``base`` supplies other keys."""
    table: dict[str, Any] = dict(base or {})
    table.update(
        {
            "model": str(model.resolve()),
            "ctx": req.ctx,
            "n_gpu_layers": option.n_gpu_layers,
            "ubatch": req.ubatch,
            "cache_type_k": req.cache_type_k,
            "cache_type_v": req.cache_type_v,
            "flash_attn": "on" if req.flash_attn else "off",
        }
    )
    if option.n_cpu_moe:
        table["n_cpu_moe"] = option.n_cpu_moe
    else:
        table.pop("n_cpu_moe", None)
    if option.overrides():  # a partial layer: its -ot rules replace any the base had
        table["override_tensor"] = list(option.overrides())
    if req.ubatch > 2048 or "batch" in table:
        table["batch"] = max(req.ubatch, int(table.get("batch", 0)))
    if req.parallel:
        extra = strip(table.get("extra_args", []), ("parallel",))
        table["extra_args"] = [*extra, *flag_args("parallel", req.parallel)]
    return table


def save_state_profile(state_file: Path, name: str, table: Mapping[str, Any]) -> None:
    """Add (or replace) ``[profiles.NAME]`` in the state file, keeping everything else in it.

    A state file that exists but is not valid TOML is left alone (``UserError``), never clobbered.
    """
    if not name.strip():
        raise UserError("profile name must not be empty")

    def add(doc: dict[str, Any]) -> None:
        profiles = doc.get("profiles")
        if not isinstance(profiles, dict):
            profiles = {}
        profiles[name] = {k: v for k, v in table.items() if v is not None}
        doc["profiles"] = profiles

    update_state(state_file, add)
