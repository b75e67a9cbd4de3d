"""A profile's identity: one digest of what decides how fast it serves, to key its figures by.

Owns ``profile_identity``. Figures kept per profile (the picker's last generation speed, stored
with each reply by ``core/chat/session.py`` and looked up by ``core/store/history.py``) belong to
this digest, never to the profile's name: two configs may each have a ``q8_0`` profile, with
other models or other flags, and one's speed is not the other's. Which flags there are and how
each is written is the profile-flag table's (``flags.py``, through ``cmdline.render``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

from coder_tui.core.config.cmdline import render, strip
from coder_tui.core.config.schema import Profile

IDENTITY_VERSION = 1
"""Part of the digest: bump it when what goes in changes, so older digests stop matching."""
_SERVER_OWN = ("port", "host", "api_key")
"""Where the server listens and its key: set by ``[server]`` (or in ``extra_args``), never speed."""


def _model_file(path: Path) -> dict[str, object]:
    """The model file as the digest sees it: its resolved path, size and modification time
    (``None`` for both when it cannot be read: a missing file is not the file it was)."""
    resolved = path
    with contextlib.suppress(OSError, RuntimeError):  # a symlink loop: the path as given
        resolved = path.resolve()
    size: int | None = None
    mtime_ns: int | None = None
    with contextlib.suppress(OSError):
        st = os.stat(resolved)
        size, mtime_ns = st.st_size, st.st_mtime_ns
    return {"path": str(resolved), "size": size, "mtime_ns": mtime_ns}


def profile_identity(profile: Profile) -> str:
    """A stable digest (32 hex digits) of what decides ``profile``'s speed.

    In: the model file (resolved path, size, modification time: the same name re-quantized or
    replaced is another model), every flag the profile passes to llama-server, written from the
    profile-flag table in its preferred spellings and order (context, ``-ngl``, tensor overrides,
    ``--n-cpu-moe``, batch sizes, cache types, flash attention, threads, mmap...), its
    ``extra_args`` as given, and its environment (``CUDA_VISIBLE_DEVICES`` and the like change
    where and how it runs).

    Out: the profile's name and ``inherit`` (renaming a profile keeps its figures; two names with
    the same model and flags are one identity), its ``system_prompt``, the port, host and API key
    (``[server]``'s, or ``--port``/``--host`` in ``extra_args``: where the server listens is not
    how fast it is), and the llama-server binary and its build (shared by every profile).
    """
    argv, _ = render(
        lambda f: getattr(profile, f.key) if f.is_profile_key and f.key != "model" else None
    )
    fields = {
        "version": IDENTITY_VERSION,
        "model": _model_file(profile.model),
        "args": list(strip(argv, _SERVER_OWN)),
        "env": sorted(profile.env.items()),
    }
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
