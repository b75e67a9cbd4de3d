"""The history database's file and connection: made private, opened, migrated, one lock around it.

Owns creating the file (0600, folders 0700) without ever closing a descriptor of it, the
connection's settings, forward migration with a backup first, and the ways in: ``_read``,
``_write`` (a ``BEGIN IMMEDIATE`` transaction whose failure is a ``HistoryWriteError``) and
``_transact`` (one transaction as a function, so it can run again elsewhere).
What is read and written is ``history.py``'s (conversations, reading messages), ``messages.py``'s
(saving prompts and streamed replies) and ``turns.py``'s (edit, delete, alternatives, owners);
the tables are ``schema.py``'s.

Degrading (``degrade=True``, the app's store): when the file cannot be written (read-only, full,
locked past the busy timeout) or read (damaged), the store copies what it can read into an
in-memory database and goes on there: nothing the user typed or the model wrote is dropped, the
chat goes on unsaved, and ``trouble`` (one line, also handed to ``on_trouble``) says why. A strict
store (the default, tests and tools) raises ``HistoryWriteError`` instead.

Many writers: WAL mode, a 5 s busy timeout, and every write in ``BEGIN IMMEDIATE`` (a deferred
transaction that reads and then writes can fail at once with "database is locked" in WAL mode
instead of waiting). One connection per store, serialised by a lock, so a store may be used from
worker threads.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from coder_tui.core.errors import UserError
from coder_tui.core.store.schema import MIGRATIONS, SCHEMA_VERSION

T = TypeVar("T")
UNSAVED_HINT = "the chat goes on unsaved, in memory (Ctrl+L, then e, exports it)"


class HistoryWriteError(UserError, sqlite3.OperationalError):
    """A write to the history database failed; ``str()`` is one line naming the file and why.

    Still a ``sqlite3.OperationalError``, so code that caught that before keeps working."""


def mkdirs_private(path: Path) -> None:
    """Create ``path`` and missing parents, each 0700 (history is private)."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)


def create_private_file(path: Path) -> None:
    """Create ``path`` empty and 0600 if it is missing; an existing file is never opened.

    Why never: closing any descriptor of a file drops every POSIX lock this process holds on it,
    including the SHARED lock that each open SQLite connection in WAL mode keeps on the database
    file (SQLite guards its own descriptors, not ours). Without that lock, another process that
    closes its connection believes it is the last one, checkpoints and deletes the WAL while this
    process is still writing to it: those commits are lost without an error, or the file is
    corrupted. So the file is made under a temporary name and linked into place, and no
    descriptor of the database's inode is closed once it has its name."""
    if path.exists():
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)  # 0600
    os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another store or process created it meanwhile
    except OSError:  # a filesystem without hard links: only a create racing ours could be hit
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    finally:
        os.unlink(tmp)


def open_private_db(
    path: Path,
    migrate: Callable[[sqlite3.Connection], None],
    *,
    busy_timeout_s: float = 5.0,
    check_same_thread: bool = True,
) -> sqlite3.Connection:
    """A connection to the private database at ``path`` (made 0600 in 0700 folders, never by
    opening an existing file), in autocommit mode with the settings every store here uses:
    a busy timeout, WAL, ``synchronous = NORMAL`` and foreign keys; ``migrate`` runs next. The
    connection is closed again if any of that fails."""
    mkdirs_private(path.parent)
    create_private_file(path)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o600)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=check_same_thread)
    try:
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000):d}")
        db.execute("PRAGMA journal_mode = WAL")
        # In WAL mode NORMAL still survives a crash or kill of coder-tui; only a power cut can
        # lose the last commits. FULL would fsync every streamed update.
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        migrate(db)
    except BaseException:
        db.close()
        raise
    return db


def _why(exc: BaseException, busy_timeout_s: float) -> str:
    text = str(exc).lower()
    if "full" in text or getattr(exc, "errno", None) == errno.ENOSPC:
        return "the disk is full"
    if "locked" in text or "busy" in text:
        return f"the database is locked by another process (waited {busy_timeout_s:g} s)"
    if "readonly" in text or "read-only" in text:
        return "the database is read-only"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def is_damaged(exc: BaseException) -> bool:
    """The file is not a database, or a damaged one (not a lock, a full disk or a read-only file)."""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.DatabaseError) and (
        "not a database" in text or "malformed" in text or "corrupt" in text
    )


class HistoryDatabase:
    """The connection to the database at ``path``, created and migrated on open."""

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout_s: float = 5.0,
        degrade: bool = False,
        memory: bool = False,
    ) -> None:
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        self.degrade = degrade
        self.trouble: str | None = None
        """Why the history is not being saved (one line), ``None`` while it is."""
        self.on_trouble: Callable[[str], None] | None = None
        """Told ``trouble`` when the store starts to work in memory (set by the UI)."""
        self.notices: list[str] = []
        """What the user should read about how the file was opened (one line each)."""
        self._lock = threading.RLock()
        if memory:  # nothing on disk (the file cannot be used at all)
            self._db = self._memory_copy(None)
            return
        try:
            self._db = open_private_db(
                path, self._adopt, busy_timeout_s=busy_timeout_s, check_same_thread=False
            )
            if degrade:
                self._probe()
        except (sqlite3.DatabaseError, OSError) as exc:
            if not degrade or is_damaged(exc):
                raise
            self._db = self._memory_copy(f"file:{path}?mode=ro")
            self._in_trouble(f"cannot open chat history {path}: {_why(exc, busy_timeout_s)}")

    @property
    def saving(self) -> bool:
        """Whether writes reach the file (False: the store works in memory, ``trouble`` says why)."""
        return self.trouble is None

    def _probe(self) -> None:
        """A few cheap reads that fail at once on a damaged file (not a whole ``quick_check``,
        which reads every page of a big history)."""
        try:
            self._db.execute("SELECT count(*) FROM sqlite_schema").fetchone()
            self._db.execute("SELECT max(updated_at) FROM conversations").fetchone()
            self._db.execute("SELECT id FROM messages WHERE status = 'streaming'").fetchall()
            self._db.execute("SELECT id FROM messages ORDER BY id DESC LIMIT 1").fetchall()
        except sqlite3.DatabaseError:
            self._db.close()
            raise

    def _memory_copy(self, source: str | sqlite3.Connection | None) -> sqlite3.Connection:
        """An in-memory database holding what ``source`` (a URI or a connection) still reads; an
        empty migrated one when nothing can be read (or ``source`` is ``None``)."""
        mem = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        try:
            if isinstance(source, str):
                src = sqlite3.connect(source, uri=True, timeout=0.5)
                try:
                    src.backup(mem)
                finally:
                    src.close()
            elif source is not None:
                source.backup(mem)
        except sqlite3.Error:
            mem.close()
            mem = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        mem.execute("PRAGMA foreign_keys = ON")
        version = int(mem.execute("PRAGMA user_version").fetchone()[0])
        if version < SCHEMA_VERSION:
            mem.execute("BEGIN")
            for migrate in MIGRATIONS[version:]:
                migrate(mem)
            mem.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
            mem.execute("COMMIT")
        return mem

    def _to_memory(self, why: str) -> None:
        """Go on in memory from what the file holds now (see the module's docstring)."""
        with self._lock:
            mem = self._memory_copy(self._db)
            old, self._db = self._db, mem
            with contextlib.suppress(sqlite3.Error):
                old.close()
            self._in_trouble(why)

    def _in_trouble(self, why: str) -> None:
        self.trouble = f"{why}; {UNSAVED_HINT}"
        if self.on_trouble is not None:
            self.on_trouble(self.trouble)

    def _adopt(self, db: sqlite3.Connection) -> None:
        """The new connection is this store's; migrate it (``open_private_db``'s last step)."""
        self._db = db
        self._migrate()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- schema ---------------------------------------------------------------------------------

    def _version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _refuse_newer(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise UserError(
                f"{self.path.name}: schema version {version} is newer than this coder-tui "
                f"understands ({SCHEMA_VERSION}); upgrade coder-tui"
            )

    def _migrate(self) -> None:
        version = self._version()
        self._refuse_newer(version)
        if version == SCHEMA_VERSION:
            return
        if version > 0:
            self._backup(version)
        with self._write():
            version = self._version()  # another process may have migrated meanwhile
            self._refuse_newer(version)
            for migrate in MIGRATIONS[version:]:
                migrate(self._db)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")

    def _backup(self, version: int) -> None:
        """A copy of the database as it was before migrating from ``version`` (sqlite's backup
        API, consistent even while another process writes)."""
        target = self.path.with_name(f"{self.path.name}.v{version}.bak")
        create_private_file(target)
        dest = sqlite3.connect(target)
        try:
            self._db.backup(dest)
        finally:
            dest.close()

    # -- reads and writes -----------------------------------------------------------------------

    def _read(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            try:
                return list(self._db.execute(sql, args).fetchall())
            except sqlite3.DatabaseError as exc:
                if not self.degrade or self.trouble is not None or not is_damaged(exc):
                    raise
                first = str(exc).splitlines()[0]
                self._to_memory(f"chat history {self.path} is damaged ({first})")
                return list(self._db.execute(sql, args).fetchall())

    def _transact(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` in one write transaction. A degrading store whose file fails goes on in
        memory and runs ``fn`` there (see the module's docstring)."""
        with self._lock:
            try:
                with self._write() as db:
                    return fn(db)
            except HistoryWriteError as exc:
                if not self.degrade or self.trouble is not None:
                    raise
                self._to_memory(str(exc))
            except sqlite3.DatabaseError as exc:
                if not self.degrade or self.trouble is not None or not is_damaged(exc):
                    raise
                first = str(exc).splitlines()[0]
                self._to_memory(f"chat history {self.path} is damaged ({first})")
            with self._write() as db:
                return fn(db)

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except (sqlite3.OperationalError, OSError) as exc:
                raise self._write_error(exc) from None
            try:
                yield self._db
            except (sqlite3.OperationalError, OSError) as exc:
                self._rollback()
                raise self._write_error(exc) from None
            except BaseException:
                self._rollback()
                raise
            try:
                self._db.execute("COMMIT")
            except (sqlite3.OperationalError, OSError) as exc:
                self._rollback()
                raise self._write_error(exc) from None

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # a failed COMMIT may have ended it already
            self._db.execute("ROLLBACK")

    def _write_error(self, exc: BaseException) -> HistoryWriteError:
        if isinstance(exc, HistoryWriteError):
            return exc
        why = _why(exc, self.busy_timeout_s)
        return HistoryWriteError(f"cannot save chat history to {self.path}: {why}")
