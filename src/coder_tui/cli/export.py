"""``coder-tui export``: run the samplers headless and serve them to Prometheus.

Either attaches to a running llama-server (``--url``) or starts a profile of the config (``--start
PROFILE``, else the default profile) and stops it on exit. Listens on loopback unless
``--allow-remote``. The collector and HTTP server are ``core.exporter``'s, the samplers
``core.metrics``'; this module only wires them, and imports them only when the command runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coder_tui.core.sanitize import sanitize_line

if TYPE_CHECKING:
    from coder_tui.core.config.loader import Config, Profile
    from coder_tui.core.exporter.http import ProfileLabels, PrometheusExporter
    from coder_tui.core.metrics.bus import MetricsSampler

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
DEFAULT_LISTEN = "127.0.0.1:9464"  # mirrors core.exporter.http.DEFAULT_LISTEN without importing it


def register(subparsers: Any, common_parent: argparse.ArgumentParser) -> None:
    """Add the ``export`` subcommand to ``subparsers``."""
    p = subparsers.add_parser(
        "export",
        parents=[common_parent],
        help="serve live metrics in the Prometheus format (headless)",
        description="Sample the GPU, host, llama-server and MoE traffic and serve them at "
        "http://HOST:PORT/metrics for Prometheus. Without --url, starts a profile and stops "
        "it on exit.",
    )
    p.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"address to serve /metrics on (default {DEFAULT_LISTEN}; loopback only unless "
        "--allow-remote)",
    )
    p.add_argument(
        "--allow-remote", action="store_true", help="allow a --listen address off this machine"
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument("--url", metavar="URL", help="watch a llama-server started elsewhere")
    source.add_argument(
        "--start", metavar="PROFILE", help="profile to start (default: default_profile)"
    )
    p.add_argument(
        "--interval", type=float, default=1.0, metavar="S", help="seconds between samples"
    )
    p.add_argument(
        "--duration", type=float, metavar="S", help="stop after this many seconds (scripts, tests)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point for ``coder-tui export``; returns the exit code."""
    from coder_tui.core.errors import UserError
    from coder_tui.core.exporter.http import check_listen, parse_listen

    host, port = parse_listen(args.listen)
    check_listen(host, allow_remote=args.allow_remote)
    if not 0.05 <= args.interval <= 3600:
        raise UserError(f"--interval {args.interval:g}: expected 0.05 to 3600 seconds")
    return asyncio.run(_export(args, host, port))


async def _export(args: argparse.Namespace, host: str, port: int) -> int:
    from coder_tui.core.exporter.http import PrometheusExporter

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in _SIGNALS:
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(sig, stop.set)  # main thread only: elsewhere, no handler
    exporter = PrometheusExporter(host, port)
    exporter.start()  # before any server starts: a taken port fails at once
    print(f"[coder-tui] serving metrics at {exporter.url}", flush=True)
    try:
        if args.url:
            return await _attached(args, exporter, stop)
        return await _managed(args, exporter, stop)
    finally:
        exporter.stop()
        for sig in _SIGNALS:
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.remove_signal_handler(sig)


def _load(args: argparse.Namespace, *, required: bool) -> Config | None:
    from coder_tui.core.config.loader import load_config
    from coder_tui.core.paths import resolve_config_path

    path = resolve_config_path(getattr(args, "config", None))
    if not required and not getattr(args, "config", None) and not path.exists():
        return None
    return load_config(path)


async def _feed(
    sampler: MetricsSampler,
    exporter: PrometheusExporter,
    labels: ProfileLabels,
    stop: asyncio.Event,
    duration_s: float | None,
) -> None:
    """Hand every snapshot to the exporter until ``stop`` or ``duration_s``."""
    deadline = None if duration_s is None else time.monotonic() + duration_s
    async with contextlib.aclosing(sampler.run()) as snaps:
        async for snap in snaps:
            exporter.update(snap, labels)
            if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                return


async def _feed_until(
    sampler: MetricsSampler,
    exporter: PrometheusExporter,
    labels: ProfileLabels,
    stop: asyncio.Event,
    duration_s: float | None,
) -> None:
    """``_feed``, cut short as soon as ``stop`` is set (not only at the next tick)."""
    feed = asyncio.create_task(_feed(sampler, exporter, labels, stop, duration_s))
    waiter = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({feed, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (feed, waiter):
            task.cancel()
        await asyncio.gather(feed, waiter, return_exceptions=True)
    if feed.done() and not feed.cancelled() and feed.exception() is not None:
        raise feed.exception()  # type: ignore[misc]


def _sampler(url: str, interval_s: float) -> MetricsSampler:
    from coder_tui.core.metrics.bus import MetricsSampler, SamplerConfig

    return MetricsSampler(
        url, config=SamplerConfig(interval_s=interval_s, server_interval_s=interval_s)
    )


async def _attached(
    args: argparse.Namespace, exporter: PrometheusExporter, stop: asyncio.Event
) -> int:
    from coder_tui.core.exporter.http import ProfileLabels

    url = str(args.url).rstrip("/")
    config = _load(args, required=False)
    model_path = await _model_path(url)
    profile = _match_profile(config, model_path)
    if profile is not None:
        labels = ProfileLabels.from_profile(profile)
    elif model_path:
        labels = ProfileLabels.from_model_path(model_path)
    else:
        labels = ProfileLabels()
    shown = sanitize_line(labels.model) if labels.model else "model unknown"
    print(f"[coder-tui] watching {sanitize_line(url)} ({shown})", flush=True)
    sampler = _sampler(url, args.interval)
    sampler.watch(pid=None, profile=profile, base_url=url)
    await _feed_until(sampler, exporter, labels, stop, args.duration)
    return 0


async def _model_path(url: str) -> str | None:
    """``/props`` ``model_path`` of the server at ``url`` (``None`` if it does not say)."""
    import httpx

    from coder_tui.core.connections import server_http

    try:
        async with server_http() as client:
            resp = await client.get(url + "/props", timeout=5.0)
            data = resp.json() if resp.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
    path = data.get("model_path") if isinstance(data, dict) else None
    return path if isinstance(path, str) and path else None


def _match_profile(config: Config | None, model_path: str | None) -> Profile | None:
    """The config's profile serving ``model_path`` (the default one first), if any."""
    if config is None or not model_path:
        return None
    try:
        served = Path(model_path).resolve()
    except (OSError, RuntimeError):
        return None
    profiles = list(config.profiles.values())
    default = config.default_profile
    if default is not None and default in config.profiles:
        profiles.insert(0, config.profiles[default])
    for profile in profiles:
        with contextlib.suppress(OSError, RuntimeError):
            if profile.model.resolve() == served:
                return profile
    return None


async def _managed(
    args: argparse.Namespace, exporter: PrometheusExporter, stop: asyncio.Event
) -> int:
    from coder_tui.core.exporter.http import ProfileLabels
    from coder_tui.core.paths import app_paths
    from coder_tui.core.server.events import Exited, ServerEvent
    from coder_tui.core.server.process import ServerManager

    config = _load(args, required=True)
    assert config is not None
    profile = config.profile(args.start)
    paths = app_paths()
    manager = ServerManager(config.server, log_dir=paths.log_dir, cache_dir=paths.cache_dir)
    crashed: list[Exited] = []

    def on_event(event: ServerEvent) -> None:
        if isinstance(event, Exited) and not event.expected:
            print(f"[coder-tui] llama-server exited: {event.reason}", flush=True)
            crashed.append(event)
            stop.set()

    manager.add_listener(on_event)
    try:
        start = asyncio.create_task(manager.start(profile))
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait({start, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if not start.done():
            start.cancel()
            await asyncio.gather(start, return_exceptions=True)
            return 1 if crashed else 0
        ready = start.result()  # raises StartFailed
        print(f"[coder-tui] {profile.name} ready at {ready.url} (pid {ready.pid})", flush=True)
        sampler = _sampler(manager.url, args.interval)
        sampler.watch(pid=ready.pid, profile=profile, base_url=manager.url)
        await _feed_until(
            sampler, exporter, ProfileLabels.from_profile(profile), stop, args.duration
        )
    finally:
        await manager.stop()
    return 1 if crashed else 0
