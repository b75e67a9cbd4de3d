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

from coder_tui.core.config.loader import Config, load_config
from coder_tui.core.errors import UserError
from coder_tui.core.paths import app_paths, resolve_config_path


def _load(args: argparse.Namespace, *, check_files: bool = True) -> Config:
    return load_config(resolve_config_path(getattr(args, "config", None)), check_files=check_files)


def profiles(args: argparse.Namespace) -> int:
    from coder_tui.core.server import caps as caps_mod
    from coder_tui.core.server.argv import build_argv, check_profiles, shell_quote
    from coder_tui.core.server.binary import BinaryNotFound, find_tool

    if args.profiles_command == "check":
        config = _load(args)
        for line in check_profiles(config):
            print(line)
        try:
            binary = find_tool("llama-server", config.server.binary)
        except BinaryNotFound as exc:
            print(f"note: {exc}")
            return 0
        caps = caps_mod.probe(binary, app_paths().cache_dir)
        for profile in config.profiles.values():
            build_argv(profile, config.server, caps, str(binary))  # raises on unsupported flags
        print(f"all {len(config.profiles)} profiles fit {binary} ({caps.version})")
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
        print(shell_quote(build_argv(profile, config.server, caps, name)))
        return 0
    print(f"[profiles.{profile.name}]")
    for key, value in _profile_items(profile):
        print(f"  {key} = {value}")
    return 0


def _profile_items(profile: object) -> list[tuple[str, object]]:
    from dataclasses import fields

    out: list[tuple[str, object]] = []
    for f in fields(profile):  # type: ignore[arg-type]
        value = getattr(profile, f.name)
        if f.name == "name" or value is None or value == () or value == {}:
            continue
        out.append((f.name, dict(value) if f.name == "env" else value))
    return out


def serve(args: argparse.Namespace) -> int:
    from coder_tui.core.config.key_checks import key_exposure_warning

    config = _load(args)
    profile = config.profile(args.profile)
    warning = key_exposure_warning(config)
    if warning:
        print(f"[coder-tui] {warning}", flush=True)
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
            print(f"  | {event.text}", flush=True)
        elif isinstance(event, StateChanged):
            print(f"[coder-tui] state: {event.state.value}", flush=True)
            advisory = None
            if event.state is ServerState.STARTING:  # the binary's version is known by then
                advisory = advisory_warning(manager.version or "")
            if advisory:
                print(f"[coder-tui] {advisory}", flush=True)
        elif isinstance(event, Ready):
            print(
                f"[coder-tui] ready at {event.url} (pid {event.pid}) after "
                f"{event.load_time_s:.2f} s",
                flush=True,
            )
        elif isinstance(event, Exited):
            print(f"[coder-tui] exited: {event.reason}", flush=True)
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
            print(f"[coder-tui] log: {manager.log_path}", flush=True)
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


def tui(args: argparse.Namespace) -> int:
    import os

    attach = getattr(args, "attach", None)
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
