"""Benchmark runs in the history database: every run with its raw per-request samples.

Owns the ``bench_*`` tables of ``app_paths().history_db`` and their migrations. They live in the
same file as chat history (one store to back up) but are not in ``core/store_schema.py``'s
``PRAGMA user_version`` chain: that chain belongs to the chat history, and two features sharing one
counter would have to agree on the order of every future migration. So the bench keeps its own
version in a ``bench_meta`` row (``key = 'bench_schema'``; not a plain ``meta`` table, which the
history store may want one day) and runs its own ``BENCH_MIGRATIONS``. Same connection rules as
``core/store.py``: WAL, a 5 s busy timeout, writes in ``BEGIN IMMEDIATE``, file 0600.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, cast

from coder_tui.core.bench.types import (
    BenchProfile,
    BenchResult,
    Machine,
    QualityOutcome,
    Sample,
    Settings,
)
from coder_tui.core.errors import UserError
from coder_tui.core.store.db import open_private_db


def _v1(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE bench_runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            started_at REAL NOT NULL,
            finished_at REAL NOT NULL,
            interrupted INTEGER NOT NULL,
            profiles TEXT NOT NULL,
            llama_server_version TEXT,
            machine_json TEXT NOT NULL,
            settings_json TEXT NOT NULL,
            profiles_json TEXT NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE bench_samples (
            run_id INTEGER NOT NULL REFERENCES bench_runs(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            profile TEXT NOT NULL,
            category TEXT NOT NULL,
            prompt_id TEXT NOT NULL,
            round INTEGER NOT NULL,
            status TEXT NOT NULL,
            prompt_n INTEGER NOT NULL,
            prompt_ms REAL NOT NULL,
            prompt_tokens_per_s REAL NOT NULL,
            predicted_n INTEGER NOT NULL,
            predicted_ms REAL NOT NULL,
            gen_tokens_per_s REAL NOT NULL,
            ttft_s REAL,
            finish_reason TEXT,
            PRIMARY KEY (run_id, seq)
        )"""
    )
    db.execute(
        """CREATE TABLE bench_quality (
            run_id INTEGER NOT NULL REFERENCES bench_runs(id) ON DELETE CASCADE,
            profile TEXT NOT NULL,
            task_id TEXT NOT NULL,
            passed INTEGER NOT NULL,
            reason TEXT NOT NULL,
            output_tail TEXT NOT NULL
        )"""
    )


BENCH_MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_v1,)
BENCH_SCHEMA_VERSION = len(BENCH_MIGRATIONS)
_SAMPLE_FIELDS = tuple(f.name for f in fields(Sample))


@dataclass(frozen=True)
class RunSummary:
    """One line of ``bench history``."""

    run_id: int
    started_at: float
    finished_at: float
    interrupted: bool
    profiles: tuple[str, ...]
    llama_server_version: str | None
    samples: int


class BenchStore:
    """The bench tables of the database at ``path`` (created and migrated on open)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Never opens (and so never closes) an existing database file: see create_private_file.
        self._db = open_private_db(path, self._adopt)

    def _adopt(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._migrate()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> BenchStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def version(self) -> int:
        """The bench schema version of the file (0: no bench tables yet)."""
        exists = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'bench_meta'"
        ).fetchone()
        if not exists:
            return 0
        row = self._db.execute("SELECT value FROM bench_meta WHERE key = 'bench_schema'").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        if self.version() == BENCH_SCHEMA_VERSION:
            return
        with self._write() as db:
            db.execute("CREATE TABLE IF NOT EXISTS bench_meta (key TEXT PRIMARY KEY, value TEXT)")
            version = self.version()  # another process may have migrated meanwhile
            if version > BENCH_SCHEMA_VERSION:
                raise UserError(
                    f"{self.path.name}: bench schema version {version} is newer than this "
                    f"coder-tui understands ({BENCH_SCHEMA_VERSION}); upgrade coder-tui"
                )
            for migrate in BENCH_MIGRATIONS[version:]:
                migrate(db)
            db.execute(
                "INSERT OR REPLACE INTO bench_meta (key, value) VALUES ('bench_schema', ?)",
                (str(BENCH_SCHEMA_VERSION),),
            )

    # -- runs -----------------------------------------------------------------------------------

    def save(self, result: BenchResult) -> int:
        """Store ``result`` with all its samples; its new run id."""
        with self._write() as db:
            cur = db.execute(
                "INSERT INTO bench_runs (started_at, finished_at, interrupted, profiles, "
                "llama_server_version, machine_json, settings_json, profiles_json) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    result.started_at,
                    result.finished_at,
                    int(result.interrupted),
                    ",".join(p.name for p in result.profiles),
                    result.machine.llama_server_version,
                    json.dumps(asdict(result.machine)),
                    json.dumps(asdict(result.settings)),
                    json.dumps([asdict(p) for p in result.profiles]),
                ),
            )
            run_id = cast(int, cur.lastrowid)
            cols = ", ".join(_SAMPLE_FIELDS)
            marks = ", ".join("?" for _ in _SAMPLE_FIELDS)
            db.executemany(
                f"INSERT INTO bench_samples (run_id, seq, {cols}) VALUES (?, ?, {marks})",  # noqa: S608
                [
                    (run_id, i, *(getattr(s, f) for f in _SAMPLE_FIELDS))
                    for i, s in enumerate(result.samples)
                ],
            )
            db.executemany(
                "INSERT INTO bench_quality (run_id, profile, task_id, passed, reason, "
                "output_tail) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (run_id, q.profile, q.task_id, int(q.passed), q.reason, q.output_tail)
                    for q in result.quality
                ],
            )
        return run_id

    def runs(self, limit: int = 50) -> list[RunSummary]:
        """The newest ``limit`` runs, newest first."""
        rows = self._db.execute(
            "SELECT r.id, r.started_at, r.finished_at, r.interrupted, r.profiles, "
            "r.llama_server_version, (SELECT COUNT(*) FROM bench_samples s WHERE s.run_id = r.id) "
            "FROM bench_runs r ORDER BY r.id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            RunSummary(int(r[0]), r[1], r[2], bool(r[3]), tuple(r[4].split(",")), r[5], int(r[6]))
            for r in rows
        ]

    def load(self, run_id: int) -> BenchResult:
        """The stored run ``run_id`` (``UserError`` if there is none)."""
        row = self._db.execute(
            "SELECT started_at, finished_at, interrupted, machine_json, settings_json, "
            "profiles_json FROM bench_runs WHERE id = ?",
            (run_id,),
        ).fetchone()
        if row is None:
            raise UserError(f"no bench run #{run_id}; `coder-tui bench history` lists them")
        cols = ", ".join(_SAMPLE_FIELDS)
        samples = [
            Sample(**dict(zip(_SAMPLE_FIELDS, r, strict=True)))
            for r in self._db.execute(
                f"SELECT {cols} FROM bench_samples WHERE run_id = ? ORDER BY seq",  # noqa: S608
                (run_id,),
            )
        ]
        quality = [
            QualityOutcome(r[0], r[1], bool(r[2]), r[3], r[4])
            for r in self._db.execute(
                "SELECT profile, task_id, passed, reason, output_tail FROM bench_quality "
                "WHERE run_id = ? ORDER BY rowid",
                (run_id,),
            )
        ]
        return BenchResult(
            started_at=row[0],
            finished_at=row[1],
            interrupted=bool(row[2]),
            machine=Machine(**json.loads(row[3])),
            settings=_settings(json.loads(row[4])),
            profiles=tuple(_profile(p) for p in json.loads(row[5])),
            samples=tuple(samples),
            quality=tuple(quality),
            run_id=run_id,
        )


def _settings(data: dict[str, Any]) -> Settings:
    known = {f.name for f in fields(Settings)}
    data = {k: v for k, v in data.items() if k in known}
    data["categories"] = tuple(data.get("categories", ()))
    data["prompt_ids"] = tuple(data.get("prompt_ids", ()))
    return Settings(**data)


def _profile(data: dict[str, Any]) -> BenchProfile:
    data = dict(data)
    data["argv"] = tuple(data.get("argv", ()))
    data["load_times_s"] = tuple(data.get("load_times_s", ()))
    return BenchProfile(**data)
