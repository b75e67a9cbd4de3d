"""``coder-tui tune PROFILE``: measure candidate ``--n-cpu-moe`` (``-ub``, threads) settings, keep the
fastest that fits.

Parses the arguments, asks ``core.fit`` for advice when the VRAM is known (a GPU, or ``--vram``),
builds the candidates around it (or takes ``--candidates``), runs ``core.tune.tune`` and prints
its progress and a final table; ``--save NAME`` writes the winner to the state file as a profile.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING, Any

from coder_tui.cli.fit_report import size

if TYPE_CHECKING:
    from pathlib import Path

    from coder_tui.core.config.loader import Config, Profile
    from coder_tui.core.gguf.layout import GgufLayout
    from coder_tui.core.tune.types import Candidate, Trial, TuneFinished, TuneSettings


def _ints(text: str) -> list[int]:
    from coder_tui.core.errors import UserError

    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise UserError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise UserError(f"expected comma-separated integers >= 0, got {text!r}")
    return values


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``tune`` subcommand."""
    p = subparsers.add_parser(
        "tune",
        parents=[common],
        help="measure --n-cpu-moe (and -ub, threads) candidates and pick the fastest that fits",
        description="Start the profile with candidate placements (how many layers' experts stay "
        "in RAM, --n-cpu-moe; with the default sweep also -ub, threads and load mode), measure "
        "prompt and decode speed of each within the time budget, and print the fastest one that "
        "fits the VRAM. --save keeps it as a profile in the state file.",
    )
    p.add_argument("profile", nargs="?", metavar="PROFILE", help="profile to tune")
    p.add_argument(
        "--budget-minutes",
        type=float,
        default=10.0,
        metavar="N",
        help="stop trying candidates after about this many minutes (default 10)",
    )
    p.add_argument("--candidates", metavar="N,N,...", help="--n-cpu-moe values to try")
    p.add_argument("--ngl", type=int, metavar="N", help="-ngl for every candidate")
    p.add_argument("--ubatches", metavar="N,N,...", help="-ub values to try as well")
    p.add_argument("--threads", metavar="N,N,...", help="-t values to try as well")
    p.add_argument("--span", type=int, default=2, help="--n-cpu-moe values either side of fit's")
    card = p.add_mutually_exclusive_group()
    card.add_argument("--vram", metavar="SIZE", help="VRAM to stay within (default: GPU's free)")
    card.add_argument("--gpu", type=int, default=0, metavar="N", help="GPU to watch (default 0)")
    p.add_argument("--margin", default="0.5GiB", metavar="SIZE", help="VRAM kept free")
    p.add_argument(
        "--gen-tokens",
        type=int,
        default=128,
        metavar="N",
        help="tokens generated per trial, for the decode speed (default 128)",
    )
    p.add_argument(
        "--prompt-tokens",
        type=int,
        default=2048,
        metavar="N",
        help="prompt length per trial, for the prompt-processing speed (default 2048)",
    )
    p.add_argument("--save", metavar="NAME", help="save the winner as a profile in the state file")
    p.add_argument(
        "--plain",
        action="store_true",
        help="sweep --n-cpu-moe only (the default tunes placement, threads, load mode, -tb, -ub)",
    )
    p.set_defaults(func=run)


def _vram(args: argparse.Namespace) -> tuple[int | None, float | None]:
    """VRAM to stay within and the card's bandwidth; (None, None) without a GPU or ``--vram``."""
    from coder_tui.core.metrics.gpu import GpuProbe
    from coder_tui.core.tune.fit import parse_size

    if args.vram:
        return parse_size(args.vram, what="--vram"), None
    probe = GpuProbe()
    try:
        snap = probe.sample()
    finally:
        probe.close()
    for dev in snap.devices:
        if dev.index == args.gpu and not dev.lost and dev.vram_free_bytes is not None:
            return dev.vram_free_bytes, dev.vram_bandwidth_bytes_per_s
    return None, None


def candidates(
    args: argparse.Namespace,
    profile: Profile,
    layout: GgufLayout,
    vram: int | None,
    bw: float | None,
) -> list[Candidate]:
    """The candidates: ``--candidates`` or values around fit's advice (or a coarse spread)."""
    import dataclasses

    from coder_tui.core.paths import app_paths
    from coder_tui.core.tune.fit import DEFAULT_OVERHEAD, FitRequest, advise, parse_size
    from coder_tui.core.tune.measured import load_runs, ram_bandwidth
    from coder_tui.core.tune.speed import calibrate
    from coder_tui.core.tune.sweep import around
    from coder_tui.core.tune.types import Candidate

    n_layer = layout.block_count
    ngl: int | None = args.ngl if args.ngl is not None else profile.n_gpu_layers
    cuts: list[int]
    args.fit_options = ()
    if vram is not None:
        req = FitRequest(
            vram_bytes=vram,
            ctx=profile.ctx or layout.context_length or 4096,
            ram_bandwidth_bytes_per_s=ram_bandwidth(
                profile.threads if profile.threads and profile.threads > 0 else None,
                app_paths().cache_dir,
            ).bytes_per_s,
            vram_bandwidth_bytes_per_s=bw or 1008e9,
            cache_type_k=profile.cache_type_k or "f16",
            cache_type_v=profile.cache_type_v or "f16",
            ubatch=profile.ubatch or 512,
            batch=profile.batch or 2048,
            flash_attn=profile.flash_attn != "off",
            margin_bytes=parse_size(args.margin, what="--margin"),
            overhead_bytes=DEFAULT_OVERHEAD,
        )
        runs = load_runs(app_paths().state_dir, profile.model, layout)
        if runs:  # rank by the speed calibrated on this model's measured runs
            speed = calibrate(
                runs,
                ram_copy_bandwidth=req.ram_bandwidth_bytes_per_s,
                vram_bandwidth=req.vram_bandwidth_bytes_per_s,
            )
            req = dataclasses.replace(req, speed=speed)
        report = advise(layout, req)
        args.fit_options = report.options
        best = report.best
        if best is not None:
            print(
                f"fit advice: {' '.join(best.flags())} (predicted {size(best.vram_bytes)} VRAM, "
                f"ceiling {best.tokens_per_s or 0:.1f} t/s)"
            )
            ngl = best.n_gpu_layers if args.ngl is None else args.ngl
            start = max(n_layer + 1 - ngl, 0)
            cuts = around(max(best.n_cpu_moe, start), start, n_layer, args.span)
        else:
            print("fit advice: nothing fits the VRAM; sweeping anyway")
            cuts = [n_layer]
    else:
        print("no VRAM figure (no GPU, no --vram): a coarse sweep of --n-cpu-moe")
        cuts = sorted({profile.n_cpu_moe or 0, n_layer // 2, n_layer})
    if args.candidates:
        cuts = _ints(args.candidates)
    ubs: list[int | None] = list(_ints(args.ubatches)) if args.ubatches else [None]
    threads: list[int | None] = list(_ints(args.threads)) if args.threads else [None]
    return [Candidate(ngl, c, u, t) for c in cuts for u in ubs for t in threads]


def _fmt(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.1f}{unit}"


def trial_line(trial: Trial) -> str:
    """One line for a finished trial."""
    peak = size(trial.peak_vram_bytes) if trial.peak_vram_bytes is not None else "-"
    if trial.status.value != "ok":
        return f"{trial.status.value}: {trial.message}"
    return (
        f"gen {_fmt(trial.generation_tokens_per_s)} t/s, prompt {_fmt(trial.prompt_tokens_per_s)} "
        f"t/s, peak VRAM {peak}, load {_fmt(trial.load_time_s, ' s')} ({trial.elapsed_s:.1f} s)"
    )


def table(trials: tuple[Trial, ...], winner: Trial | None) -> list[str]:
    """The final table, winner marked with ``*``."""
    rows = [
        f"  {'candidate':<34} {'status':<14} {'gen t/s':>8} {'prompt t/s':>10} {'peak VRAM':>11}"
    ]
    for t in trials:
        mark = "*" if t is winner else " "
        peak = size(t.peak_vram_bytes) if t.peak_vram_bytes is not None else "-"
        status = t.status.value + (" (over)" if t.fits_with_margin is False else "")
        rows.append(
            f"{mark} {t.candidate.label():<34} {status:<14} {_fmt(t.generation_tokens_per_s):>8} "
            f"{_fmt(t.prompt_tokens_per_s):>10} {peak:>11}"
        )
    return rows


def record_runs(model: Path, trials: tuple[Trial, ...]) -> None:
    """Keep every measured decode speed for fit's calibrated prediction."""
    from coder_tui.core.paths import app_paths
    from coder_tui.core.tune.measured import record_run

    for t in trials:
        if t.generation_tokens_per_s:
            record_run(
                app_paths().state_dir, model, t.candidate.flags(), t.generation_tokens_per_s, "tune"
            )


async def by_dimension(
    config: Config,
    profile: Profile,
    cands: list[Candidate],
    settings: TuneSettings,
    args: argparse.Namespace,
) -> TuneFinished:
    """The dimension tuner from fit's pick (placements: fit's next best)."""
    from coder_tui.core.gguf.layout import read_layout
    from coder_tui.core.tune.dims import DimensionDone, default_dimensions, tune_dimensions
    from coder_tui.core.tune.types import Candidate, TrialFinished, TrialStarted, TuneFinished

    options = list(args.fit_options)
    pick = options[0]
    base = Candidate(pick.n_gpu_layers, pick.n_cpu_moe, cpu_parts=pick.cpu_parts)
    nearby = [Candidate(o.n_gpu_layers, o.n_cpu_moe, cpu_parts=o.cpu_parts) for o in options[1:4]]
    layout = read_layout(profile.model)
    dims = default_dimensions(nearby, cores=profile.threads, mtp=bool(layout.nextn_layers))
    async for event in tune_dimensions(config, profile, base, dims, settings):
        if isinstance(event, TrialStarted):
            print(f"[{event.index}/{event.total}] {event.candidate.label()} ...", flush=True)
        elif isinstance(event, TrialFinished):
            print(f"[{event.index}/{event.total}] {trial_line(event.trial)}", flush=True)
        elif isinstance(event, DimensionDone):
            verdict = "significant" if event.significant else "not significant, kept"
            early = ", stopped early (flat)" if event.stopped_early else ""
            print(
                f"== {event.name}: {event.best.candidate.label()} {event.gain_pct:+.1f} % "
                f"({verdict}; {event.tried} tried{early})",
                flush=True,
            )
        elif isinstance(event, TuneFinished):
            return event
    raise AssertionError("tune ended without TuneFinished")


def run(args: argparse.Namespace) -> int:
    """Run ``coder-tui tune``."""
    from coder_tui.core.config.flags import profile_to_table
    from coder_tui.core.config.loader import load_config
    from coder_tui.core.gguf.layout import read_layout
    from coder_tui.core.paths import app_paths, resolve_config_path
    from coder_tui.core.tune.fit import parse_size
    from coder_tui.core.tune.llama_fit import save_state_profile
    from coder_tui.core.tune.sweep import tune
    from coder_tui.core.tune.trial import candidate_profile
    from coder_tui.core.tune.types import TrialFinished, TrialStarted, TuneFinished, TuneSettings

    config = load_config(resolve_config_path(getattr(args, "config", None)))
    profile = config.profile(args.profile)
    layout = read_layout(profile.model)
    vram, bw = _vram(args)
    cands = candidates(args, profile, layout, vram, bw)
    settings = TuneSettings(
        budget_s=args.budget_minutes * 60,
        gen_tokens=args.gen_tokens,
        prompt_tokens=min(
            args.prompt_tokens, max((profile.ctx or 4096) - args.gen_tokens - 64, 16)
        ),
        vram_budget_bytes=vram,
        margin_bytes=parse_size(args.margin, what="--margin"),
        gpu_index=args.gpu or 0,
        default_ngl=profile.n_gpu_layers if profile.n_gpu_layers is not None else 999,
        default_ubatch=profile.ubatch or 512,
    )

    async def sweep() -> TuneFinished:
        async for event in tune(config, profile, cands, settings):
            if isinstance(event, TrialStarted):
                print(f"[{event.index}/{event.total}] {event.candidate.label()} ...", flush=True)
            elif isinstance(event, TrialFinished):
                print(f"[{event.index}/{event.total}] {trial_line(event.trial)}", flush=True)
            elif isinstance(event, TuneFinished):
                return event
        raise AssertionError("tune ended without TuneFinished")

    plain = args.plain or args.candidates or args.ubatches or args.threads or not args.fit_options
    done = asyncio.run(sweep() if plain else by_dimension(config, profile, cands, settings, args))
    record_runs(profile.model, done.trials)
    print()
    for line in table(done.trials, done.winner):
        print(line)
    if done.winner is None:
        print("no candidate ran and fit; nothing to pick")
        return 1
    print(f"winner: {done.winner.candidate.label()}")
    if args.save:
        state = app_paths().state_file
        chosen = candidate_profile(profile, done.winner.candidate)
        save_state_profile(state, args.save, profile_to_table(chosen))
        print(f"added [profiles.{args.save}] to {state}")
    return 0
