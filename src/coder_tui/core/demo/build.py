"""``coder-tui demo``: build the tiny synthetic MoE model, quantize it, write a config to try it.

Owns ``prepare_demo``: the F16 file (written by ``demo_model``), the importance matrix that IQ
types need (``llama-imatrix`` over generated text), the quant variants (``llama-quantize``), a
manifest that lets a second call reuse what is already there, and the demo ``config.toml`` with one
profile per file. The model's shape and weights belong to ``demo_model``; finding the binaries to
``server.binary``; reading the config back to ``config``.

The tools run with the size directory as their working directory and relative file names, because
llama-quantize records the imatrix and dataset names in its output: the files then come out the
same, byte for byte, wherever the demo directory lives.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from coder_tui.core.atomic import write_text_atomic
from coder_tui.core.demo.model import (
    SIZES,
    DemoSpec,
    calibration_text,
    write_f16_model,
)
from coder_tui.core.errors import UserError
from coder_tui.core.server.binary import find_tool

__all__ = [
    "DEFAULT_QUANTS",
    "SIZES",
    "DemoResult",
    "DemoSpec",
    "needs_imatrix",
    "prepare_demo",
    "write_f16_model",
]

DEFAULT_QUANTS = ("Q8_0", "Q4_K_M", "IQ2_XXS")
_KNOWN_QUANTS_TEXT = (
    "Q8_0 Q6_K Q5_K_M Q5_K_S Q5_1 Q5_0 Q4_K_M Q4_K_S Q4_1 Q4_0 Q3_K_L Q3_K_M Q3_K_S Q2_K Q2_K_S "
    "IQ4_XS IQ4_NL IQ3_M IQ3_S IQ3_XS IQ3_XXS IQ2_M IQ2_S IQ2_XS IQ2_XXS IQ1_M IQ1_S BF16"
)
KNOWN_QUANTS = frozenset(_KNOWN_QUANTS_TEXT.split())
GENERATOR_VERSION = 1
"""Bump whenever ``demo_model`` changes the bytes it writes, so cached files are rebuilt."""
MANIFEST = "manifest.json"
CALIBRATION = "calibration.txt"
IMATRIX = "imatrix.gguf"
IMATRIX_CTX = 128
TOOL_TIMEOUT_S = 1800.0
_TAIL_LINES = 15

Progress = Callable[[str], None]
TICK_S = 5.0
"""While a tool runs, progress is said this often (seconds)."""


@dataclass(frozen=True)
class DemoResult:
    """What ``prepare_demo`` made: the config to start with and each profile's model file."""

    config_path: Path
    models: Mapping[str, Path]
    """Profile name -> GGUF path (absolute)."""


def needs_imatrix(quant: str) -> bool:
    """Whether llama-quantize needs (or badly wants) an importance matrix for ``quant``."""
    return quant.upper().startswith("IQ") or quant.upper() == "Q2_K_S"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _Manifest:
    """``manifest.json``: for each file the recipe that made it, its size, mtime and sha256."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.entries: dict[str, dict[str, Any]] = {}
        try:
            data = json.loads((directory / MANIFEST).read_text())
        except (OSError, ValueError):
            return
        files = data.get("files") if isinstance(data, dict) else None
        if isinstance(files, dict):
            self.entries = {k: v for k, v in files.items() if isinstance(v, dict)}

    def fresh(self, name: str, recipe: str) -> str | None:
        """The file's sha256 if it exists, was made by ``recipe`` and is intact, else ``None``."""
        entry = self.entries.get(name)
        path = self.directory / name
        if entry is None or entry.get("recipe") != recipe:
            return None
        try:
            stat = path.stat()
        except OSError:
            return None
        sha = entry.get("sha256")
        if stat.st_size != entry.get("size") or not isinstance(sha, str):
            return None
        if stat.st_mtime_ns == entry.get("mtime_ns"):
            return sha  # unchanged since we wrote it: skip hashing (bench files are ~1 GB)
        if _sha256(path) != sha:
            return None
        entry["mtime_ns"] = stat.st_mtime_ns  # copied or touched, but intact
        self.save()
        return sha

    def record(self, name: str, recipe: str) -> str:
        """Hash the file just made, remember it, save the manifest; return the sha256."""
        path = self.directory / name
        sha = _sha256(path)
        stat = path.stat()
        self.entries[name] = {
            "recipe": recipe,
            "sha256": sha,
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
        }
        self.save()
        return sha

    def save(self) -> None:
        text = json.dumps({"version": 1, "files": self.entries}, indent=2, sort_keys=True)
        write_text_atomic(self.directory / MANIFEST, text + "\n", mode=0o644)


def _tail(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return "\n".join(lines[-_TAIL_LINES:])


def _run_tool(
    argv: Sequence[str],
    cwd: Path,
    what: str,
    tick: Callable[[float], None] | None = None,
    tick_s: float | None = None,
) -> None:
    """Run a llama.cpp tool; a failure becomes a ``UserError`` with the end of its output.
    ``tick(elapsed_s)`` is called every ``tick_s`` while it runs (progress for a long step)."""
    env = dict(os.environ)
    env["CUDA_VISIBLE_DEVICES"] = ""  # CPU only: same bytes on every machine, no VRAM taken
    try:
        proc = subprocess.Popen(  # noqa: S603 (argv list, no shell; llama.cpp tools found by find_tool)
            list(argv),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
    except OSError as exc:
        raise UserError(f"{what}: cannot run {argv[0]}: {exc}") from exc
    every = TICK_S if tick_s is None else tick_s
    start = time.monotonic()
    with proc:
        while True:
            elapsed = time.monotonic() - start
            try:  # communicate may be called again after a timeout: no output is lost
                out, _ = proc.communicate(timeout=max(0.01, min(every, TOOL_TIMEOUT_S - elapsed)))
                break
            except subprocess.TimeoutExpired:
                elapsed = time.monotonic() - start
                if elapsed >= TOOL_TIMEOUT_S:
                    proc.kill()
                    out, _ = proc.communicate()
                    raise UserError(
                        f"{what}: timed out after {TOOL_TIMEOUT_S:.0f} s\n{_tail(out or '')}"
                    ) from None
                if tick is not None:
                    tick(elapsed)
    if proc.returncode != 0:
        raise UserError(f"{what} failed (exit {proc.returncode}):\n{_tail(out or '')}")


QUANT_COST = {"Q8_0": 1.0, "Q6_K": 6.0, "Q5_K_M": 8.0, "Q4_K_M": 9.0, "Q4_0": 1.0}
"""How long llama-quantize takes per type, relative to Q8_0 (the demo's small model on 2 cores:
Q8_0 0.09 s, Q4_K_M 0.84 s, IQ2_XXS 6.8 s). The i-quants search a lattice: ``IQ_COST``."""
IQ_COST = 70.0


def quant_cost(quant: str) -> float:
    """``QUANT_COST`` of ``quant`` (an unknown K-quant costs as Q4_K_M)."""
    upper = quant.upper()
    return IQ_COST if upper.startswith("IQ") else QUANT_COST.get(upper, QUANT_COST["Q4_K_M"])


def step_eta(
    done: Sequence[tuple[float, float]], left: Sequence[float], elapsed_s: float = 0.0
) -> str:
    """``about 40 s left`` for the steps of relative costs ``left`` (the current one first,
    ``elapsed_s`` in), from the (cost, seconds) of those ``done``; ``""`` before the first ends
    (nothing to go by), ``longer than estimated`` once past the estimate."""
    if not done or not left:
        return ""
    per_cost = sum(secs for _c, secs in done) / sum(cost for cost, _s in done)
    remaining = per_cost * sum(left) - elapsed_s
    return f"about {remaining:.0f} s left" if remaining >= 0.5 else "longer than estimated"


def _tmp_name(directory: Path, name: str) -> str:
    """A fresh temporary file name in ``directory`` keeping ``name``'s suffix (tools check it)."""
    fd, tmp = tempfile.mkstemp(
        prefix=f".{Path(name).stem}.", suffix=Path(name).suffix, dir=directory
    )
    os.close(fd)
    return Path(tmp).name


_OUT = "\0out"
"""Placeholder in a tool's argv for the temporary output file name."""


def _make_with_tool(
    directory: Path,
    name: str,
    argv: Sequence[str],
    what: str,
    tick: Callable[[float], None] | None = None,
) -> None:
    """Run a tool writing to a temp name (``_OUT`` in ``argv``), then move it to ``name``."""
    tmp = _tmp_name(directory, name)
    try:
        _run_tool([tmp if arg == _OUT else arg for arg in argv], directory, what, tick)
        os.chmod(directory / tmp, 0o644)  # mkstemp made it 0600; models are not secret
        os.replace(directory / tmp, directory / name)
    finally:
        (directory / tmp).unlink(missing_ok=True)


def _normalize_quants(quants: Sequence[str]) -> list[str]:
    out: list[str] = []
    for quant in quants:
        upper = quant.upper()
        if upper == "F16":
            continue  # the F16 file is always there
        if upper not in KNOWN_QUANTS:
            known = ", ".join(sorted(KNOWN_QUANTS))
            raise UserError(f"unknown quant type {quant!r} (known: F16, {known})")
        if upper not in out:
            out.append(upper)
    return out


def _threads() -> int:
    return min(4, os.cpu_count() or 1)


def model_file_name(size: str, quant: str) -> str:
    """File name of the demo model of ``size`` in ``quant`` (``F16`` for the unquantized one)."""
    return f"demo-{size}-{quant.upper()}.gguf"


def _config_text(spec: DemoSpec, models: Mapping[str, Path], default: str, port: int) -> str:
    import tomli_w

    profiles: dict[str, dict[str, Any]] = {}
    for profile, path in models.items():
        table: dict[str, Any] = {
            "model": str(path),
            "ctx": 4096,
            "n_gpu_layers": 99,
            "threads": _threads(),
            "jinja": True,
        }
        if profile.endswith("_cpu_moe"):
            table["n_cpu_moe"] = spec.n_layer
        profiles[profile] = table
    doc = {
        "default_profile": default,
        "server": {"port": port, "ready_timeout_s": 120},
        "profiles": profiles,
    }
    header = (
        f"# coder-tui demo config ({spec.name}): a tiny random-weight {spec.n_expert}-expert MoE\n"
        "# model in several quants. Written by `coder-tui demo`; rewritten on every run.\n\n"
    )
    return header + tomli_w.dumps(doc)


def prepare_demo(
    out_dir: Path,
    size: str = "small",
    quants: Sequence[str] = DEFAULT_QUANTS,
    *,
    port: int = 8084,
    progress: Progress | None = None,
    quantize_bin: Path | None = None,
    imatrix_bin: Path | None = None,
) -> DemoResult:
    """Make (or reuse) the demo model of ``size`` in F16 and each of ``quants``, and its config.

    Files go to ``out_dir/<size>/``; ones already there with the recorded content are kept, so a
    second call only checks them. Raises ``UserError`` for an unknown size or quant type, a
    missing binary, or a tool that fails (with the end of its output).
    """
    if size not in SIZES:
        raise UserError(f"unknown demo size {size!r} (known: {', '.join(SIZES)})")
    spec = SIZES[size]
    wanted = _normalize_quants(quants)
    say: Progress = progress or (lambda _msg: None)
    directory = (out_dir / size).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    manifest = _Manifest(directory)

    f16 = model_file_name(size, "F16")
    f16_recipe = f"f16 v{GENERATOR_VERSION} {json.dumps(asdict(spec), sort_keys=True)}"
    f16_sha = manifest.fresh(f16, f16_recipe)
    if f16_sha is None:
        say(f"writing {f16}")
        write_f16_model(directory / f16, spec)
        f16_sha = manifest.record(f16, f16_recipe)
    models: dict[str, Path] = {"f16": directory / f16}

    imatrix_sha = "-"
    if any(needs_imatrix(q) for q in wanted):
        text = calibration_text(spec.seed)
        calib_recipe = f"calibration {hashlib.sha256(text.encode()).hexdigest()}"
        calib_sha = manifest.fresh(CALIBRATION, calib_recipe)
        if calib_sha is None:
            write_text_atomic(directory / CALIBRATION, text, mode=0o644)
            calib_sha = manifest.record(CALIBRATION, calib_recipe)
        imatrix_recipe = f"imatrix f16={f16_sha} text={calib_sha} ctx={IMATRIX_CTX}"
        found = manifest.fresh(IMATRIX, imatrix_recipe)
        if found is None:
            tool = find_tool("llama-imatrix", imatrix_bin)
            say(f"computing {IMATRIX} with {tool.name}")
            argv = [str(tool), "-m", f16, "-f", CALIBRATION, "-o", _OUT, "--output-format", "gguf"]
            argv += ["-c", str(IMATRIX_CTX), "-b", str(IMATRIX_CTX), "-ngl", "0"]
            argv += ["-t", str(_threads()), "--no-ppl"]
            _make_with_tool(directory, IMATRIX, argv, "llama-imatrix")
            found = manifest.record(IMATRIX, imatrix_recipe)
        imatrix_sha = found

    quantize: Path | None = None  # looked up only when something needs quantizing
    recipes = {
        q: f"quantize {q} f16={f16_sha} imatrix={imatrix_sha if needs_imatrix(q) else '-'}"
        for q in wanted
    }
    pending = [q for q in wanted if manifest.fresh(model_file_name(size, q), recipes[q]) is None]
    took: list[tuple[float, float]] = []  # (cost, seconds) of each quantization done: the ETA
    for quant in wanted:
        name = model_file_name(size, quant)
        recipe = recipes[quant]
        if quant in pending:
            quantize = quantize or find_tool("llama-quantize", quantize_bin)
            step = f"{len(took) + 1}/{len(pending)}"
            left_costs = [quant_cost(q) for q in pending[len(took) :]]
            eta = step_eta(took, left_costs)
            say(f"quantizing {name} ({step}" + (f", {eta})" if eta else ")"))
            prefix = ["--imatrix", IMATRIX] if needs_imatrix(quant) else []
            argv = [str(quantize), *prefix, f16, _OUT, quant, str(os.cpu_count() or 1)]
            began = time.monotonic()

            def tick(
                elapsed: float, name: str = name, step: str = step, costs: list[float] = left_costs
            ) -> None:
                left = step_eta(took, costs, elapsed)
                say(f"quantizing {name} ({step}): {elapsed:.0f} s" + (f", {left}" if left else ""))

            _make_with_tool(directory, name, argv, f"llama-quantize {quant}", tick)
            took.append((quant_cost(quant), time.monotonic() - began))
            manifest.record(name, recipe)
        models[quant.lower()] = directory / name
        if size == "bench":
            models[f"{quant.lower()}_cpu_moe"] = directory / name

    default = "q4_k_m" if "q4_k_m" in models else next((m for m in models if m != "f16"), "f16")
    config_path = directory / "config.toml"
    write_text_atomic(config_path, _config_text(spec, models, default, port), mode=0o644)
    say(f"wrote {config_path}")
    return DemoResult(config_path=config_path, models=models)
