"""Helpers for UI tests: a history store in a temp folder and an app that starts no server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from coder_tui.core.config.loader import ChatSettings, Config, Profile, ServerSettings
from coder_tui.core.store.history import HistoryStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    with HistoryStore(tmp_path / "history.sqlite3") as s:
        yield s


@pytest.fixture
def offline_config(tmp_path: Path) -> Config:
    """A config whose server is never started (the app runs with autostart off)."""
    model = tmp_path / "Demo-Q4_K_M.gguf"
    model.write_bytes(b"GGUF")
    profile = Profile(name="q4_k_m", model=model)
    return Config(
        path=None,
        server=ServerSettings(port=8084),
        profiles={"q4_k_m": profile},
        default_profile="q4_k_m",
        chat=ChatSettings(),
    )


@pytest.fixture
def seeded(store: HistoryStore) -> int:
    """The id of ``seed_conversation(store)``."""
    return seed_conversation(store)


def seed_conversation(store: HistoryStore) -> int:
    """A conversation with a prompt, a complete reply holding code, and an interrupted reply."""
    conv = store.new_conversation("Snake in JavaScript")
    store.add_user_message(conv.id, "Write a tiny snake game loop in JavaScript.", "q4_k_m")
    reply = store.begin_reply(conv.id, "q4_k_m", "Demo-Q4_K_M.gguf")
    store.finish_reply(
        reply,
        "Here is the loop:\n\n```js\nfunction tick() {\n  move(snake);\n  draw();\n}\n```\n",
        "complete",
        prompt_tokens=21,
        completion_tokens=34,
        ttft_s=0.12,
        prompt_per_second=410.5,
        predicted_per_second=21.78,
        finish_reason="stop",
    )
    store.add_user_message(conv.id, "Now add collision detection.", "iq3_xxs")
    partial = store.begin_reply(conv.id, "iq3_xxs", "Demo-IQ3_XXS.gguf")
    store.update_reply(partial, "Check the head against")
    return conv.id
