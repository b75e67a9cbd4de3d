"""First run without a config: ``coder-tui init``, the choices said in the terminal, and carrying
out the one made in the TUI's first-run screen.

``coder-tui`` with no config opens the first-run screen in a terminal (``ui/screens/first_run.py``)
and, without one (a pipe, CI), says the same choices as commands (``core/config/starter.py``'s
``missing_config``); ``init`` writes the config (from ``config.example.toml``, or one profile per
GGUF file found in the usual places) where coder-tui reads it, never over an existing file, as
the TUI's first-run choice does (``commands.write_first_config``).
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``init``."""
    p = subparsers.add_parser(
        "init",
        parents=[common],
        help="write a first config: from config.example.toml, or from GGUF files found here",
        description="Write the config file coder-tui reads (--config, else $CODER_TUI_CONFIG, "
        "else ~/.config/coder-tui/config.toml); an existing file is never replaced.",
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--example",
        action="store_true",
        help="copy config.example.toml (two profiles to edit: set their model paths)",
    )
    source.add_argument(
        "--models",
        action="store_true",
        help="one profile per GGUF file found in ~/models and the Hugging Face and llama.cpp "
        "caches (the default when any is found)",
    )
    p.set_defaults(func=init)


def init(args: argparse.Namespace) -> int:
    """Run ``coder-tui init``."""
    from coder_tui.commands import write_first_config
    from coder_tui.core.config.starter import first_run_offer
    from coder_tui.core.paths import resolve_config_path

    offer = first_run_offer(resolve_config_path(getattr(args, "config", None)))
    use_models = args.models or (not args.example and bool(offer.models))
    return write_first_config(offer, "models" if use_models else "example")
