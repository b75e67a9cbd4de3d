"""The state file: what the app remembers between runs (last profile, theme, saved profiles).

TOML under the XDG state directory, written atomically with tomli-w. The user's ``config.toml`` is
never written. A state file that cannot be parsed is reported and left as it is (never clobbered):
reads then return an empty state, writes refuse with a ``UserError``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomli_w

from coder_tui.core.atomic import write_text_atomic
from coder_tui.core.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(text) if text else {}
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML ({exc}); not overwriting it") from None


def load_state(path: Path) -> dict[str, Any]:
    """The state as a dict; a missing or unreadable file is an empty state (never an error)."""
    try:
        return _read(path)
    except UserError:
        return {}


def update_state(path: Path, mutate: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Read, let ``mutate`` change the dict in place, write back atomically; returns the new state.

    Raises ``UserError`` when the existing file cannot be read or parsed (it is left untouched).
    """
    doc = _read(path)
    mutate(doc)
    write_text_atomic(path, tomli_w.dumps(doc))
    return doc


def remember(path: Path, **values: Any) -> None:
    """Set top-level keys (``last_profile=..., theme=...``); ``None`` removes a key. Best effort:
    remembering is never worth an error in the UI, so failures are ignored."""

    def apply(doc: dict[str, Any]) -> None:
        for key, value in values.items():
            if value is None:
                doc.pop(key, None)
            else:
                doc[key] = value

    with contextlib.suppress(UserError, OSError):
        update_state(path, apply)
