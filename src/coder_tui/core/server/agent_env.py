"""What a coding agent needs to use the running llama-server: base URLs and environment lines.

llama-server speaks both the OpenAI API (``/v1/chat/completions``, ``/v1/models``) and the
Anthropic Messages API (``/v1/messages``), so one server can back either kind of client. The lines
are shell ``export`` statements, printed by ``coder-tui env`` and shown in the TUI's Connect panel.
A key is never printed: the lines refer to the environment variable that holds it.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

LOCAL_KEY = "sk-no-key-required"
"""What to send when the server has no API key (clients insist on a non-empty one)."""


@dataclass(frozen=True)
class Endpoints:
    openai_base_url: str
    anthropic_base_url: str
    model: str


def endpoints(base_url: str, model: str | None) -> Endpoints:
    root = base_url.rstrip("/")
    if root.endswith("/v1"):
        root = root[: -len("/v1")]
    return Endpoints(f"{root}/v1", root, model or "local")


def env_lines(base_url: str, model: str | None, api_key_env: str | None = None) -> list[str]:
    """``export`` lines for OpenAI-style and Anthropic-style clients, ready to paste."""
    ep = endpoints(base_url, model)
    key = f'"${{{api_key_env}}}"' if api_key_env else LOCAL_KEY
    return [
        "# OpenAI-compatible clients (aider, Continue, opencode, the openai SDK)",
        f"export OPENAI_BASE_URL={shlex.quote(ep.openai_base_url)}",
        f"export OPENAI_API_KEY={key}",
        f"export OPENAI_MODEL={shlex.quote(ep.model)}",
        "# Anthropic-compatible clients (Claude Code, the anthropic SDK)",
        f"export ANTHROPIC_BASE_URL={shlex.quote(ep.anthropic_base_url)}",
        f"export ANTHROPIC_AUTH_TOKEN={key}",
        f"export ANTHROPIC_MODEL={shlex.quote(ep.model)}",
    ]
