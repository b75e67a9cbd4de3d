"""A profile's identity (its model file and flags) and the figures the store keeps under it: a
speed is never another config's profile of the same name, nor this one's with other flags."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from coder_tui.core.config.flags import TABLE
from coder_tui.core.config.identity import profile_identity
from coder_tui.core.config.schema import Profile
from coder_tui.core.store.history import SCHEMA_VERSION, HistoryStore
from coder_tui.core.store.schema import MIGRATIONS

SAMPLES: dict[str, object] = {
    "ctx": 8192,
    "n_gpu_layers": 99,
    "override_tensor": ("exps=CPU",),
    "n_cpu_moe": 16,
    "batch": 1024,
    "ubatch": 256,
    "cache_type_k": "q8_0",
    "cache_type_v": "q8_0",
    "flash_attn": "on",
    "cont_batching": False,
    "jinja": False,
    "threads": 7,
    "mmap": False,
    "extra_args": ("--no-warmup",),
    "env": {"CUDA_VISIBLE_DEVICES": "1"},
}
"""A set value of every profile key that decides speed (all but the model, tested apart)."""
NOT_SPEED = {"model", "system_prompt", "inherit"}


@pytest.fixture
def profile(tmp_path: Path) -> Profile:
    model = tmp_path / "Coder-Q8_0.gguf"
    model.write_bytes(b"GGUF" + bytes(60))
    return Profile(name="q8_0", model=model)


def test_every_speed_flag_of_the_table_has_a_sample() -> None:
    """A key added to the profile-flag table must be decided on here: in the identity or not."""
    keys = {f.key for f in TABLE if f.is_profile_key}
    assert keys - NOT_SPEED == set(SAMPLES)


@pytest.mark.parametrize("key", sorted(SAMPLES))
def test_each_flag_that_decides_speed_changes_the_identity(profile: Profile, key: str) -> None:
    other = replace(profile, **{key: SAMPLES[key]})  # type: ignore[arg-type]
    assert profile_identity(other) != profile_identity(profile)
    assert profile_identity(other) == profile_identity(replace(other))  # stable


def test_name_prompt_inherit_and_where_it_listens_do_not(profile: Profile) -> None:
    base = replace(profile, n_cpu_moe=16)
    same = replace(
        base,
        name="renamed",
        system_prompt="be brief",
        inherit="base",
        extra_args=("--port", "9999", "--host=127.0.0.2"),
    )
    assert profile_identity(same) == profile_identity(base)
    with_args = replace(base, extra_args=("--port", "9999", "--no-warmup"))
    assert profile_identity(with_args) == profile_identity(
        replace(base, extra_args=("--no-warmup",))
    )


def test_the_model_file_decides_by_path_size_and_time(profile: Profile, tmp_path: Path) -> None:
    first = profile_identity(profile)
    same_path = replace(profile, model=tmp_path / "." / "Coder-Q8_0.gguf")
    assert profile_identity(same_path) == first  # resolved: one file, one identity
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    (elsewhere / "Coder-Q8_0.gguf").write_bytes(profile.model.read_bytes())
    assert profile_identity(replace(profile, model=elsewhere / "Coder-Q8_0.gguf")) != first

    st = profile.model.stat()
    os.utime(profile.model, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    touched = profile_identity(profile)
    assert touched != first  # replaced in place (a new download, a new quant)
    profile.model.write_bytes(b"GGUF" + bytes(80))
    os.utime(profile.model, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert profile_identity(profile) != touched  # same time, other size

    profile.model.unlink()
    assert profile_identity(profile) not in {first, touched}  # a missing file is not the file


def test_the_identity_is_the_same_in_another_process(profile: Profile) -> None:
    code = (
        "import sys; from pathlib import Path\n"
        "from coder_tui.core.config.identity import profile_identity\n"
        "from coder_tui.core.config.schema import Profile\n"
        "print(profile_identity(Profile(name='x', model=Path(sys.argv[1]), n_cpu_moe=16,"
        " env={'B': '2', 'A': '1'})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(profile.model)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "123"},
    )
    here = replace(profile, n_cpu_moe=16, env={"A": "1", "B": "2"})
    assert out.stdout.strip() == profile_identity(here)
    assert len(out.stdout.strip()) == 32


def _reply(store: HistoryStore, conv: int, name: str, ident: str | None, tps: float) -> int:
    msg = store.begin_reply(conv, name, "Coder-Q8_0.gguf", identity=ident)
    store.finish_reply(msg, "hi", "complete", predicted_per_second=tps)
    return msg


def test_the_last_speed_is_that_of_the_profile_with_that_identity(
    profile: Profile, tmp_path: Path
) -> None:
    mine = profile_identity(profile)
    theirs = profile_identity(replace(profile, n_gpu_layers=0))  # another config's q8_0
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        conv = store.new_conversation("x").id
        assert store.last_speed(mine) is None
        first = _reply(store, conv, "q8_0", mine, 21.5)
        _reply(store, conv, "q8_0", theirs, 955.0)
        assert store.last_speed(mine) == 21.5
        assert store.last_speed(theirs) == 955.0
        streaming = store.begin_reply(conv, "q8_0", "Coder-Q8_0.gguf", identity=mine)
        assert store.last_speed(mine) == 21.5  # a reply with no numbers yet counts for nothing
        store.finish_reply(streaming, "again", "complete", predicted_per_second=30.0)
        assert store.last_speed(mine) == 30.0  # the newest
        stored = store.message(first)
        assert stored is not None and stored.profile_identity == mine


def _version_3_database(path: Path) -> None:
    """A history file as coder-tui wrote it before identities: a q8_0 reply at 955 t/s."""
    db = sqlite3.connect(path, isolation_level=None)
    for migrate in MIGRATIONS[:3]:
        migrate(db)
    db.execute("PRAGMA user_version = 3")
    db.execute(
        "INSERT INTO conversations (id, title, created_at, updated_at) VALUES (1, 'old', 1, 1)"
    )
    db.execute(
        "INSERT INTO messages (conversation_id, role, content, status, profile, model, created_at,"
        " updated_at, predicted_per_second, slot) VALUES (1, 'assistant', 'old reply', 'complete',"
        " 'q8_0', 'Coder-Q8_0.gguf', 1, 1, 955.0, 1)"
    )
    db.close()


def test_an_older_history_opens_and_its_replies_are_no_profiles_speed(
    profile: Profile, tmp_path: Path
) -> None:
    path = tmp_path / "h.sqlite3"
    _version_3_database(path)
    mine = profile_identity(profile)
    with HistoryStore(path) as store:
        [old] = store.messages(1)
        assert old.content == "old reply" and old.predicted_per_second == 955.0
        assert old.profile_identity is None
        assert store.last_speed(mine) is None  # which flags served it is unknown
        _reply(store, 1, "q8_0", mine, 21.5)
        assert store.last_speed(mine) == 21.5
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()
    assert path.with_name("h.sqlite3.v3.bak").exists()
