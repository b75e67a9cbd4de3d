"""``coder-tui env [PROFILE]``: the environment lines that point a coding agent at the server."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "env",
        parents=[common],
        help="print export lines that point coding agents at the server",
    )
    p.add_argument("profile", nargs="?", help="profile whose server and model to use")
    p.add_argument("--url", help="a server started elsewhere (instead of the config's)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from coder_tui.commands import _load
    from coder_tui.core.server.agent_env import env_lines
    from coder_tui.core.server.process import base_url

    if args.url:
        print("\n".join(env_lines(args.url, None)))
        return 0
    config = _load(args, check_files=False)
    profile = config.profile(args.profile)
    print("\n".join(env_lines(base_url(config.server), profile.model.stem)))
    return 0
