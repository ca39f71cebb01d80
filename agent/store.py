"""The one module that owns SQLite: schema migrations, WAL, durability settings, per-thread connections.

Every connection runs in WAL mode with synchronous=FULL, so a committed batch of events, a ledger
row or an outbox row survives kill -9 and power loss. Other modules ask the Store for a connection
(or a transaction); they never open the file themselves.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import sqlite_utils

from agent.errors import StoreError

log = logging.getLogger(__name__)

Migration = Callable[[sqlite_utils.Database], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(name: str) -> Callable[[Migration], Migration]:
    """Register a schema step; steps run once each, in order, recorded in `_migrations`."""

    def register(func: Migration) -> Migration:
        MIGRATIONS.append((name, func))
        return func

    return register


@migration("0001_core")
def _core(db: sqlite_utils.Database) -> None:
    db.execute(
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            boot_id TEXT NOT NULL, mono_ns INTEGER NOT NULL, wall_ns INTEGER NOT NULL,
            synced INTEGER NOT NULL, driver TEXT NOT NULL, door TEXT NOT NULL,
            entries INTEGER NOT NULL, exits INTEGER NOT NULL)"""
    )
    db.execute("CREATE INDEX events_wall ON events(wall_ns)")
    db.execute(
        """CREATE TABLE release_ledger (
            id INTEGER PRIMARY KEY,
            window_start_ns INTEGER NOT NULL, window_end_ns INTEGER NOT NULL, stream TEXT NOT NULL,
            noisy_values TEXT NOT NULL, mechanism TEXT NOT NULL, parameters TEXT NOT NULL,
            epsilon TEXT NOT NULL, sampler_version TEXT NOT NULL, released_wall_ns INTEGER NOT NULL,
            prev_hash TEXT NOT NULL, hash TEXT NOT NULL,
            UNIQUE (window_start_ns, stream))"""
    )
    db.execute(
        """CREATE TABLE privacy_spend (
            window_start_ns INTEGER NOT NULL, stream TEXT NOT NULL, unit TEXT NOT NULL,
            epsilon TEXT NOT NULL, ledger_id INTEGER NOT NULL REFERENCES release_ledger(id),
            PRIMARY KEY (window_start_ns, stream, unit))"""
    )
    db.execute(
        """CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            msg_id TEXT NOT NULL UNIQUE, topic TEXT NOT NULL, payload TEXT NOT NULL,
            window_start_ns INTEGER NOT NULL, ledger_id INTEGER NOT NULL REFERENCES release_ledger(id),
            created_wall_ns INTEGER NOT NULL, delivered_wall_ns INTEGER)"""
    )
    db.execute("CREATE INDEX outbox_pending ON outbox(seq) WHERE delivered_wall_ns IS NULL")
    db.execute("CREATE TABLE agent_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")


@migration("0002_presence")
def _presence(db: sqlite_utils.Database) -> None:
    db.execute(
        """CREATE TABLE presence_events (
            id INTEGER PRIMARY KEY,
            boot_id TEXT NOT NULL, mono_ns INTEGER NOT NULL, wall_ns INTEGER NOT NULL,
            synced INTEGER NOT NULL, driver TEXT NOT NULL, zone TEXT NOT NULL, present INTEGER NOT NULL)"""
    )
    db.execute("CREATE INDEX presence_wall ON presence_events(wall_ns)")


@migration("0003_spend_rho")
def _spend_rho(db: sqlite_utils.Database) -> None:
    # zCDP streams record their rho; pure streams leave it empty (and the other way round for epsilon).
    db.execute("ALTER TABLE privacy_spend ADD COLUMN rho TEXT NOT NULL DEFAULT ''")


class Store:
    """Owns one SQLite file; hands each thread its own connection to it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate()

    def conn(self) -> sqlite3.Connection:
        """This thread's connection (autocommit mode; use `transaction()` to group writes)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
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

    def counters(self) -> dict[str, int]:
        return {str(n): int(v) for n, v in self.conn().execute("SELECT name, value FROM counters")}

    def close(self) -> None:
        """Close every connection this store opened (call once all threads are done)."""
        with self._lock:
            for conn in self._all:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._all.clear()
        self._local = threading.local()
