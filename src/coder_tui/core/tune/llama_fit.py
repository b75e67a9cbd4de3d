"""Around the fit advisor: llama.cpp's own answer (``llama-fit-params``) and saving profiles.

Owns ``run_fit_params`` (llama.cpp's fitted arguments for this machine's free device memory with
the same margin, and its memory estimate for a given placement, each under a timeout; never
raises), ``fitted_placement`` (its answer's placement flags, to predict beside ours) and
``save_state_profile`` (adds ``[profiles.NAME]`` to the state file: TOML, read-modify-write with
tomli-w, atomic). The user's ``config.toml`` is never written. The advice itself is ``fit.py``'s;
the flags' spellings are the profile-flag table's (``config/flags.py``).
"""

from __future__ import annotations

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
