"""The one module that owns SQLite: schema migrations, WAL, durability settings, per-thread connections.

Every connection runs in WAL mode with synchronous=FULL, so a committed batch of events, a ledger
row or an outbox row survives kill -9 and power loss. Other modules ask the Store for a connection
(or a transaction); they never open the file themselves.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import sqlite_utils

from agent.errors import StoreError
from agent.store.migrations import MIGRATIONS

log = logging.getLogger(__name__)


def create_private(path: Path) -> None:
    """Create an empty database file readable by its owner only, unless it exists.

    The file holds raw sales and door events; SQLite gives its -wal and -shm files the same mode.
    Outside systemd (whose unit sets UMask=0077) the process umask would otherwise leave it 0644.
    """
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


class Store:
    """Owns one SQLite file; hands each thread its own connection to it."""

    def __init__(self, path: Path, check_integrity: bool = True) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        create_private(self.path)
        # Only a new, empty file takes auto_vacuum; on an existing one the pragma tries to write, which
        # fails on a full disk and would then stop every new connection (health, status) from opening.
        self._new_file = self.path.stat().st_size == 0
        self.recovered_from: Path | None = None
        if check_integrity and self.path.exists():
            problem = self._integrity_problem()
            if problem is not None:
                self.recovered_from = self._move_aside(problem)
        self._migrate()

    def _integrity_problem(self) -> str | None:
        """Why the existing file is unusable, or None when SQLite's quick check passes."""
        try:
            conn = sqlite3.connect(self.path, timeout=30)
            try:
                rows = conn.execute("PRAGMA quick_check").fetchall()
            finally:
                conn.close()
        except sqlite3.OperationalError as exc:
            # Locked, busy or unreadable is not damage: say so and leave the file where it is.
            text = str(exc).lower()
            if "locked" in text or "busy" in text:
                hint = "is another agent running?"
            elif "full" in text:
                hint = "the disk is full: free space, then start again"
            else:
                hint = "check the disk, the path and its permissions"
            raise StoreError(f"{self.path}: cannot check the database ({exc}); {hint}") from exc
        except sqlite3.DatabaseError as exc:  # "file is not a database", "database disk image is malformed"
            return str(exc)
        result = "; ".join(str(r[0]) for r in rows)
        return None if result == "ok" else result

    def _move_aside(self, problem: str) -> Path:
        """Keep the damaged file (and its WAL) for inspection under a new name, then start fresh."""
        stamp = time.strftime("%Y%m%dT%H%M%S")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            source = Path(str(self.path) + suffix)
            if source.exists():
                source.rename(Path(str(target) + suffix))
        log.error("%s is damaged (%s); moved it to %s and started a fresh database", self.path, problem, target)
        return target

    def conn(self) -> sqlite3.Connection:
        """This thread's connection (autocommit mode; use `transaction()` to group writes)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            # Takes effect only on a new, empty file: lets retention hand freed pages back to the disk.
            if self._new_file:
                conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT; everything inside lands together or not at all."""
        conn = self.conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _migrate(self) -> None:
        try:
            conn = self.conn()
            db = sqlite_utils.Database(conn)
            conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_wall_ns INTEGER)")
            done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
            for name, step in MIGRATIONS:
                if name in done:
                    continue
                with self.transaction():
                    step(db)
                    conn.execute("INSERT INTO _migrations VALUES (?, ?)", (name, time.time_ns()))
                log.info("applied schema migration %s to %s", name, self.path)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: {exc}") from exc

    def get_state(self, key: str, default: str | None = None) -> str | None:
        row = self.conn().execute("SELECT value FROM agent_state WHERE key = ?", (key,)).fetchone()
        return default if row is None else str(row[0])

    @staticmethod
    def state_in(conn: sqlite3.Connection, key: str) -> str | None:
        """A state value read on the caller's connection (inside its transaction)."""
        row = conn.execute("SELECT value FROM agent_state WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def set_state(conn: sqlite3.Connection, key: str, value: str) -> None:
        conn.execute(
            "INSERT INTO agent_state VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value)
        )

    @staticmethod
    def bump_counter(conn: sqlite3.Connection, name: str, by: int = 1) -> None:
        conn.execute(
            "INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, by),
        )

    def give_back_free_pages(self) -> None:
        """Hand freed pages back to the file system (the file is created with auto_vacuum=INCREMENTAL)."""
        self.conn().execute("PRAGMA incremental_vacuum")

    def used_bytes(self) -> int:
        """Bytes of the file that hold data (free pages excluded)."""
        conn = self.conn()
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0] - conn.execute("PRAGMA freelist_count").fetchone()[0]
        return int(page_size * pages)

    def counters(self) -> dict[str, int]:
        return {str(n): int(v) for n, v in self.conn().execute("SELECT name, value FROM counters")}

    def release_thread_connection(self) -> None:
        """Close this thread's connection: for short-lived threads (one per HTTP request), whose
        connections would otherwise pile up until close()."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            return
        self._local.conn = None
        with self._lock:
            self._all = [c for c in self._all if c is not conn]
        with contextlib.suppress(sqlite3.Error):
            conn.close()

    def close(self) -> None:
        """Close every connection this store opened (call once all threads are done)."""
        with self._lock:
            for conn in self._all:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._all.clear()
        self._local = threading.local()
