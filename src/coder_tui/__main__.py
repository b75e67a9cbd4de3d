"""The ``coder-tui`` command line: argparse, dispatch, and one place that turns user errors into lines.

The Textual app is imported lazily, only for the commands that open it, so headless commands
(``profiles``, ``serve``, ``demo --prepare-only``) start fast and run without a terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from collections.abc import Iterator, Sequence

from coder_tui import __version__
from coder_tui.core.errors import UserError

# Further subcommands, one module each under coder_tui/cli/: ``register(subparsers, common)`` adds
# the parser and sets ``func`` (taking the parsed args, returning an exit code). Their modules
# import heavy things only inside ``func``, so ``coder-tui --version`` stays fast.
EXTRA_COMMANDS: tuple[str, ...] = (
    "bench",
    "env",
    "export",
    "fit",
    "first_run",
    "shape_model",
    "tune",
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="coder-tui",
        description="Run, watch and compare a local MoE coding model served by llama-server.",
    )
    p.add_argument("--version", action="version", version=f"coder-tui {__version__}")
    p.add_argument(
        "--config", metavar="PATH", help="config file (else $CODER_TUI_CONFIG, else XDG)"
    )
    p.add_argument("--attach", metavar="URL", help="watch and chat with a server started elsewhere")
    p.add_argument("--profile", metavar="NAME", help="profile to open (default: default_profile)")
    p.add_argument("--no-start", action="store_true", help="open the TUI without starting a server")
    p.add_argument(
        "--refresh-hz",
        type=float,
        metavar="HZ",
        help="redraw and sample at most this often (lower it on slow SSH links; default 60 fps, "
        "metrics at 1 Hz)",
    )
    p.add_argument(
        "--export",
        metavar="HOST:PORT",
        help="also serve the live metrics for Prometheus at HOST:PORT (loopback only), no extra sampling",
    )
    p.add_argument(
        "--keep-server",
        action="store_true",
        help="leave the server running when coder-tui exits (a later start finds it)",
    )
    # --config is accepted before or after the subcommand (SUPPRESS keeps an earlier value).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="config file")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo", parents=[common], help="generate the tiny demo MoE model and open the TUI on it"
    )
    demo.add_argument(
        "--size",
        choices=("small", "bench"),
        default="small",
        help="small: a 2.5 MiB model made in seconds (default); bench: a larger one whose "
        "speeds are worth comparing (about a minute to make, quantizing shown with an ETA)",
    )
    demo.add_argument("--prepare-only", action="store_true", help="make files, print config path")
    demo.add_argument("--dir", metavar="PATH", help="where to put the demo (default: user cache)")
    demo.add_argument(
        "--port", type=int, default=8084, help="port for the demo's llama-server (default 8084)"
    )

    prof = sub.add_parser(
        "profiles", parents=[common], help="check or show the profiles of the config"
    )
    psub = prof.add_subparsers(dest="profiles_command", metavar="ACTION", required=True)
    psub.add_parser("check", parents=[common], help="validate the config and list its profiles")
    show = psub.add_parser("show", parents=[common], help="show one profile")
    show.add_argument("name", nargs="?", help="profile to show (default: default_profile)")
    show.add_argument("--argv", action="store_true", help="print the llama-server command line")

    serve = sub.add_parser(
        "serve", parents=[common], help="start llama-server headless and print its log"
    )
    serve.add_argument("profile", nargs="?", help="profile to serve (default: default_profile)")
    serve.add_argument(
        "--stop-leftover",
        action="store_true",
        help="stop a llama-server that an earlier coder-tui run left on the port, then start",
    )
    serve.add_argument(
        "--keep-server", action="store_true", help="leave the server running when coder-tui exits"
    )

    for name in EXTRA_COMMANDS:
        module = importlib.import_module(f"coder_tui.cli.{name}")
        module.register(sub, common)
    _describe(p)
    return p


def _describe(parser: argparse.ArgumentParser) -> None:
    """Give each subcommand without a description its one-line help as one, so that
    ``coder-tui demo --help`` says what ``demo`` does."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                if not sub.description and helps.get(name):
                    text = str(helps[name])
                    sub.description = text[:1].upper() + text[1:] + "."
                sub.set_defaults(usage_parser=sub)  # the innermost one wins: errors show its usage
                _describe(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # said by the subcommand that was given them, with its usage (not the top one's)
        getattr(args, "usage_parser", parser).error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return _dispatch(args)
    except UserError as exc:
        for line in _error_lines(exc):
            print(
                f"coder-tui: {line}" if line and not line.startswith("  ") else line,
                file=sys.stderr,
            )
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def _error_lines(exc: UserError) -> list[str]:
    """The lines to print: one per config problem, each shown safely (a newline or escape in a
    path or a server's text is shown, never obeyed or split into a fake line)."""
    from coder_tui.core.errors import ConfigError
    from coder_tui.core.sanitize import sanitize, sanitize_line

    if isinstance(exc, ConfigError):
        return [sanitize_line(str(p)) for p in exc.problems] or ["error"]
    return sanitize(str(exc)).splitlines() or ["error"]


def _dispatch(args: argparse.Namespace) -> int:
    from coder_tui import commands

    if args.command == "demo":
        return commands.demo(args)
    if args.command is None:
        return commands.tui(args)
    # Headless commands print text from servers, models and files: whatever a print forgot,
    # no escape sequence or bidi control reaches the terminal (the TUI draws its own).
    with _sanitized_output():
        func = getattr(args, "func", None)
        if func is not None:
            return int(func(args))
        if args.command == "profiles":
            return commands.profiles(args)
        return commands.serve(args)


@contextlib.contextmanager
def _sanitized_output() -> Iterator[None]:
    from coder_tui.core.sanitize import SafeTextStream

    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = SafeTextStream(out), SafeTextStream(err)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err


if __name__ == "__main__":
    sys.exit(main())
