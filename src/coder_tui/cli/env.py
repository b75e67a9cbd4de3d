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
    from coder_tui.core.sanitize import sanitize_line
    from coder_tui.core.server.agent_env import env_lines
    from coder_tui.core.server.process import base_url

    if args.url:
        print("\n".join(sanitize_line(line) for line in env_lines(args.url, None)))
        return 0
    config = _load(args, check_files=False)
    profile = config.profile(args.profile)
    # The key the server checks is [server] api_key_env's; agents must send that one.
    key_env = config.server.api_key_env
    lines = env_lines(base_url(config.server), profile.model.stem, key_env)
    print("\n".join(sanitize_line(line) for line in lines))
    return 0
