"""llama-server's ``/metrics`` and ``/slots`` payloads read into numbers, slots and a phase.

Owns ``parse_prometheus`` (the ``llamacpp:`` samples of the Prometheus text page),
``parse_slots`` (the ``/slots`` JSON as ``SlotSample``s) and the server phase they imply.
Polling them and turning counters into speeds is ``server``'s.

What this llama.cpp (``tools/server``) reports, and what follows from it:

* ``llamacpp:prompt_tokens_total`` / ``prompt_seconds_total`` grow with every prompt batch, so
  prompt speed is live. ``tokens_predicted_total`` / ``tokens_predicted_seconds_total`` grow only
  when a request ends (``metrics_on_prediction`` runs from the slot's reset), so their ratio over an
  interval is the speed of the requests that ended in it, as the server's own
  ``timings.predicted_per_second`` (which divides by decode steps, one fewer than tokens).
* Live generation speed therefore comes from ``/slots``: ``next_token[0].n_decoded`` of busy
  slots (reset to 0 when a request ends), plus the tail of requests that ended between two polls
  from the ``tokens_predicted_total`` delta.
* A busy slot (``is_processing``) with ``n_decoded == 0`` is processing its prompt; with
  ``n_decoded > 0`` it is generating. ``n_prompt_tokens`` is the slot's cached context (prompt and
  generated tokens), so ``n_prompt_tokens / n_ctx`` is its KV fill.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from coder_tui.core.metrics.types import ServerPhase, SlotSample

PREFIX = "llamacpp:"
COUNTERS = (
    "prompt_tokens_total",
    "prompt_seconds_total",
    "tokens_predicted_total",
    "tokens_predicted_seconds_total",
    "n_decode_total",
)


def parse_prometheus(text: str) -> dict[str, float]:
    """``llamacpp:`` samples of a Prometheus text page: name (prefix dropped, labels kept) -> value."""
    out: dict[str, float] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line.startswith(PREFIX):
            continue
        name, _, rest = line[len(PREFIX) :].rpartition(" ") if "}" not in line else _labelled(line)
        try:
            out[name] = float(rest.split()[0]) if rest.split() else math.nan
        except ValueError:
            continue
    return out


def _labelled(line: str) -> tuple[str, str, str]:
    head, _, rest = line[len(PREFIX) :].partition("}")
    return head + "}", " ", rest.strip()


def as_int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def parse_slots(data: Any) -> tuple[SlotSample, ...]:
    """``/slots`` JSON (a list of slot objects) as ``SlotSample``s; unknown shapes give ()."""
    if not isinstance(data, list):
        return ()
    out = []
    for item in data:
        if not isinstance(item, Mapping) or as_int(item.get("id")) is None:
            continue
        nxt = item.get("next_token")
        first = nxt[0] if isinstance(nxt, list) and nxt and isinstance(nxt[0], Mapping) else {}
        busy = bool(item.get("is_processing", False))
        decoded = as_int(first.get("n_decoded"))
        n_ctx = as_int(item.get("n_ctx"))
        used = as_int(item.get("n_prompt_tokens"))
        if not busy:
            phase = ServerPhase.IDLE
        elif decoded:
            phase = ServerPhase.GENERATING
        else:
            phase = ServerPhase.PROMPT
        out.append(
            SlotSample(
                id=int(item["id"]),
                n_ctx=n_ctx,
                is_processing=busy,
                phase=phase,
                task_id=as_int(item.get("id_task")),
                context_tokens=used,
                prompt_tokens_processed=as_int(item.get("n_prompt_tokens_processed")),
                prompt_tokens_cached=as_int(item.get("n_prompt_tokens_cache")),
                tokens_decoded=decoded,
                remaining_tokens=as_int(first.get("n_remain")),
                kv_fill_ratio=used / n_ctx if used is not None and n_ctx else None,
            )
        )
    return tuple(out)


def server_phase(
    slots: tuple[SlotSample, ...] | None,
    metrics: Mapping[str, float] | None,
    prompt_delta: float | None,
) -> ServerPhase:
    if slots is not None:
        phases = {s.phase for s in slots}
        if ServerPhase.PROMPT in phases:  # a prompt batch dominates the step it shares
            return ServerPhase.PROMPT
        return ServerPhase.GENERATING if ServerPhase.GENERATING in phases else ServerPhase.IDLE
    if metrics is not None and metrics.get("requests_processing", 0) > 0:
        return ServerPhase.PROMPT if prompt_delta else ServerPhase.GENERATING
    return ServerPhase.IDLE
