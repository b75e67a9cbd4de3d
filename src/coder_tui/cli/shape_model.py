"""``coder-tui shape-model NAME RECIPE -o FILE``: a header-true, zero-weight GGUF of a real model.

Parses the arguments and calls ``core.demo.shape_model.write_shape_model``: the named architecture
and size (``qwen3next`` is Qwen3-Coder-Next, ``qwen3moe`` Qwen3-30B-A3B, ``qwen3`` Qwen3-8B, and
``-tiny`` variants that llama-server loads in a second) with a quant recipe (``UD-IQ2_XXS``,
``UD-IQ3_XXS``...), written sparse, so fit, tune and the dashboard run on the real layout without
the weights. ``--mtp`` adds the MTP block, ``--split N`` writes N parts.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from coder_tui.core.units import format_size


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``shape-model`` subcommand."""
    from coder_tui.core.demo.shape_model import RECIPES, SHAPES

    p = subparsers.add_parser(
        "shape-model",
        parents=[common],
        help="write a zero-weight GGUF with a real model's tensors (for fit, tune, tests)",
    )
    p.add_argument("shape", choices=sorted(SHAPES), help="architecture and size")
    p.add_argument("recipe", choices=sorted(RECIPES), help="quant type of each kind of tensor")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the .gguf to write")
    p.add_argument("--mtp", action="store_true", help="add the MTP (nextn) block (qwen3next)")
    p.add_argument("--split", type=int, default=1, metavar="N", help="write N split parts")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``coder-tui shape-model``."""
    from coder_tui.core.demo.shape_model import RECIPES, SHAPES, write_shape_model
    from coder_tui.core.errors import UserError

    try:
        paths = write_shape_model(
            Path(args.output).expanduser(),
            SHAPES[args.shape],
            RECIPES[args.recipe],
            mtp=args.mtp,
            split=max(args.split, 1),
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None
    for path in paths:
        print(f"{path}: {format_size(path.stat().st_size, digits=2)} (sparse: zero weights)")
    return 0
