"""Watching several llama-servers at once: one frozen ``FleetRow`` per server, about once a second.

Owns ``Remote`` (a server to watch: name, URL, the env var holding its API key, optionally the URL
of its own coder-tui exporter for GPU numbers) and ``FleetPoller``, which asks every remote for
``/health``, ``/props``, ``/metrics`` and ``/slots`` concurrently with httpx. Speeds and KV fill
come from ``metrics.server.ServerProbe`` (one per remote, so counters turn into rates). Nothing
here raises for a remote's sake: a server that is down, slow, or answers garbage is a row with
``up`` false and the reason in ``error``. Reading ``[[remotes]]`` from the config is ``config``'s;
showing the rows is the UI's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import PurePath
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from coder_tui.core.config.schema import Remote
from coder_tui.core.connections import server_http
from coder_tui.core.metrics.server import ServerProbe
from coder_tui.core.metrics.types import ServerPhase, ServerSample

PROPS_REFRESH_S = 30.0
"""``/props`` hardly changes: read it again after this long, or when a server comes back."""


@dataclass(frozen=True)
class FleetRow:
    """What one remote looked like at ``checked_at_s``."""

    name: str
    url: str
    up: bool
    """``/health`` answered 200 (ready) or 503 (loading)."""
    phase: ServerPhase
    checked_at_s: float
    """Wall-clock time of the poll (``time.time()``)."""
    model: str | None = None
    """The served model's name: ``/props`` ``model_alias``, or the model's file name."""
    model_path: str | None = None
    n_ctx: int | None = None
    """Context per slot (``/props`` ``default_generation_settings.n_ctx``)."""
    total_slots: int | None = None
    build_info: str | None = None
    generation_tokens_per_s: float | None = None
    prompt_tokens_per_s: float | None = None
    kv_fill_ratio: float | None = None
    busy_slots: int | None = None
    error: str | None = None
    """This poll's problem (``None`` when everything answered)."""
    last_error: str | None = None
    """The most recent problem, kept after the server recovers."""
    last_error_at_s: float | None = None
    gpu_available: bool | None = None
    """From the remote's exporter; ``None`` when it has none or it did not answer."""
    gpu_memory_used_bytes: float | None = None
    gpu_memory_total_bytes: float | None = None


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


@dataclass
class _State:
    probe: ServerProbe
    client: httpx.AsyncClient
    props: dict[str, Any] | None = None
    props_at: float = 0.0
    was_up: bool = False
    last_error: str | None = None
    last_error_at: float | None = None


class FleetPoller:
    """Polls ``remotes`` together; ``run`` yields a tuple of rows (in ``remotes`` order) per tick."""

    def __init__(
        self,
        remotes: Sequence[Remote],
        *,
        interval_s: float = 1.0,
        timeout_s: float = 2.0,
        transport: httpx.AsyncBaseTransport | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.remotes = tuple(remotes)
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._transport = transport
        self._env = os.environ if env is None else env
        self._states: dict[str, _State] = {}

    def _state(self, remote: Remote) -> _State:
        state = self._states.get(remote.name)
        if state is None:
            headers: dict[str, str] = {}
            key = self._env.get(remote.api_key_env) if remote.api_key_env else None
            if key:
                headers["Authorization"] = f"Bearer {key}"
            client = server_http(headers=headers, transport=self._transport, timeout=self.timeout_s)
            probe = ServerProbe(
                remote.url, client=client, timeout_s=self.timeout_s, min_interval_s=0.0
            )
            state = _State(probe=probe, client=client)
            self._states[remote.name] = state
        return state

    async def poll_once(self) -> tuple[FleetRow, ...]:
        """One row per remote; never raises for a remote's failure."""
        return tuple(await asyncio.gather(*(self._poll_safe(r) for r in self.remotes)))

    async def run(self) -> AsyncGenerator[tuple[FleetRow, ...], None]:
        """Rows every ``interval_s`` until cancelled or closed (then the clients close)."""
        try:
            next_t = time.monotonic()
            while True:
                yield await self.poll_once()
                next_t += self.interval_s
                delay = next_t - time.monotonic()
                if delay < 0:  # a slow remote: keep the rate, skip ticks
                    next_t, delay = time.monotonic(), 0.0
                await asyncio.sleep(delay)
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Close every client (idempotent)."""
        states, self._states = self._states, {}
        for state in states.values():
            with contextlib.suppress(Exception):
                await state.client.aclose()

    async def _poll_safe(self, remote: Remote) -> FleetRow:
        state = self._state(remote)
        try:
            row = await self._poll(remote, state)
        except Exception as exc:  # a remote's failure is a row, never an exception
            row = FleetRow(
                remote.name,
                remote.url,
                up=False,
                phase=ServerPhase.DOWN,
                checked_at_s=time.time(),
                error=f"{type(exc).__name__}: {_short(exc)}",
            )
        if row.error is not None:
            state.last_error, state.last_error_at = row.error, row.checked_at_s
        return replace(row, last_error=state.last_error, last_error_at_s=state.last_error_at)

    async def _poll(self, remote: Remote, state: _State) -> FleetRow:
        base = remote.url.rstrip("/")
        now = time.time()
        health, sample, gpu = await asyncio.gather(
            self._health(state.client, base),
            state.probe.sample(),
            self._exporter(state.client, remote.exporter_url),
        )
        status, health_error = health
        up = status in (200, 503)
        errors = [] if health_error is None else [health_error]
        if remote.api_key_env and not self._env.get(remote.api_key_env):
            errors.append(f"${remote.api_key_env} is not set")
        if up and (
            not state.was_up or state.props is None or now - state.props_at > PROPS_REFRESH_S
        ):
            props, props_error = await self._props(state.client, base)
            state.props_at = now
            if props is not None:
                state.props = props
            if props_error is not None:
                errors.append(props_error)
        state.was_up = up
        if not up:
            state.probe.reset()
        phase = _phase(status, sample)
        props = state.props or {}
        settings = props.get("default_generation_settings")
        n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
        model_path = _str(props.get("model_path"))
        return FleetRow(
            remote.name,
            remote.url,
            up=up,
            phase=phase,
            checked_at_s=now,
            model=_model_name(_str(props.get("model_alias")), model_path),
            model_path=model_path,
            n_ctx=_int(n_ctx),
            total_slots=_int(props.get("total_slots")),
            build_info=_str(props.get("build_info")),
            generation_tokens_per_s=sample.generation_tokens_per_s if up else None,
            prompt_tokens_per_s=sample.prompt_tokens_per_s if up else None,
            kv_fill_ratio=sample.kv_fill_ratio if up else None,
            busy_slots=sample.busy_slots if up else None,
            error="; ".join(errors) or None,
            gpu_available=gpu[0],
            gpu_memory_used_bytes=gpu[1],
            gpu_memory_total_bytes=gpu[2],
        )

    async def _health(self, client: httpx.AsyncClient, base: str) -> tuple[int | None, str | None]:
        try:
            resp = await client.get(base + "/health", timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            return None, f"/health: {type(exc).__name__}: {_short(exc)}"
        if resp.status_code in (200, 503):
            return resp.status_code, None
        return resp.status_code, f"/health answered HTTP {resp.status_code}"

    async def _props(
        self, client: httpx.AsyncClient, base: str
    ) -> tuple[dict[str, Any] | None, str | None]:
        try:
            resp = await client.get(base + "/props", timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            return None, f"/props: {type(exc).__name__}: {_short(exc)}"
        if resp.status_code != 200:
            return None, f"/props answered HTTP {resp.status_code}"
        try:
            data = resp.json()
        except ValueError:
            return None, "/props: not JSON"
        if not isinstance(data, dict):
            return None, "/props: not a JSON object"
        return data, None

    async def _exporter(
        self, client: httpx.AsyncClient, url: str | None
    ) -> tuple[bool | None, float | None, float | None]:
        """GPU availability and VRAM (summed over devices) from a coder-tui exporter."""
        if url is None:
            return None, None, None
        try:
            resp = await client.get(url, timeout=self.timeout_s)
            resp.raise_for_status()
            families = list(text_string_to_metric_families(resp.text))
        except (httpx.HTTPError, ValueError):
            return None, None, None
        values: dict[str, float] = {}
        for fam in families:
            for s in fam.samples:
                values[s.name] = values.get(s.name, 0.0) + float(s.value)
        available = values.get("coder_tui_gpu_available")
        return (
            None if available is None else available > 0,
            values.get("coder_tui_gpu_memory_used_bytes"),
            values.get("coder_tui_gpu_memory_total_bytes"),
        )


def _phase(status: int | None, sample: ServerSample) -> ServerPhase:
    if status == 503:
        return ServerPhase.LOADING
    if status != 200:
        return ServerPhase.DOWN
    return ServerPhase.IDLE if sample.phase is ServerPhase.DOWN else sample.phase


def _model_name(alias: str | None, model_path: str | None) -> str | None:
    """The alias, or the file name when the alias is the path (servers started without -a)."""
    if alias and alias != model_path:
        return alias
    return PurePath(model_path).name if model_path else alias


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
