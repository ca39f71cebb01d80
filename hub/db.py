"""The hub's database: one schema and one set of queries for SQLite and PostgreSQL.

SQL is written once, with `?` placeholders, in the subset both engines share (ON CONFLICT upserts,
CASE instead of MAX/GREATEST, window functions); the adapter only swaps the placeholder style for
psycopg and chooses how a transaction begins. Migrations are recorded in `hub_migrations`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from agent.contract import CONNECTION_MAX, EARLIEST_WINDOW_S, FUTURE_SLACK_S, NAME_RE, SEQ_MAX
from hub.config import is_postgres_dsn
from hub.contract import single_value
from hub.errors import StorageError


def _backfill_amount(conn: Connection) -> None:
    """Summaries stored before `amount` existed (POS sales) get it from their payload."""
    rows = conn.query("SELECT msg_id, payload FROM summaries WHERE amount IS NULL AND entries IS NULL")
    updates = []
    for msg_id, payload in rows:
        amount = single_value(json.loads(payload).get("values"))
        if amount is not None:
            updates.append((amount, msg_id))
    conn.executemany("UPDATE summaries SET amount = ? WHERE msg_id = ?", updates)


def _backfill_rejected(conn: Connection) -> None:
    """Refusals kept before they were counted per store: their store from the topic, their counts summarised."""
    rows = conn.query("SELECT id, topic FROM rejected")
    conn.executemany(
        "UPDATE rejected SET store = ?, kept_bytes = LENGTH(topic) + LENGTH(payload) WHERE id = ?",
        [(topic_store_segment(str(topic)), rid) for rid, topic in rows],
    )
    conn.execute(
        "INSERT INTO rejected_summary (store, reason, refused, refused_bytes, kept, first_at, last_at, last_topic,"
        " last_detail) SELECT store, reason, COUNT(*), SUM(LENGTH(payload)), COUNT(*), MIN(received_at),"
        " MAX(received_at), MAX(topic), '' FROM rejected GROUP BY store, reason"
    )


def topic_store_segment(topic: str) -> str:
    """The fourth level of a coop topic when it is a valid store name, else ""."""
    parts = topic.split("/")
    return parts[3] if len(parts) >= 4 and NAME_RE.match(parts[3]) else ""


def _quarantine_out_of_bounds(conn: Connection) -> None:
    """Rows stored before the hub checked bounds (a value of 2^62, a window in 9999) would overflow sums and mark
    shops silent even after an upgrade: they move to `rejected`, and the stores' state is recomputed without them."""
    count, cents = 10**7, 10**12  # the widest value bounds of agent/contract/streams.py
    earliest, latest = EARLIEST_WINDOW_S, int(time.time()) + FUTURE_SLACK_S
    where = (
        f"(entries IS NOT NULL AND (entries < {-count} OR entries > {count}))"
        f" OR (exits IS NOT NULL AND (exits < {-count} OR exits > {count}))"
        f" OR (amount IS NOT NULL AND (amount < {-cents} OR amount > {cents}))"
        f" OR seq < 1 OR seq > {SEQ_MAX} OR window_start_s < {earliest} OR window_start_s > {latest}"
    )
    now = time.time()
    bad = conn.query(f"SELECT store, msg_id, payload FROM summaries WHERE {where}")
    conn.executemany(
        "INSERT INTO rejected (id, received_at, worker, topic, reason, payload, store, detail, size, kept_bytes)"
        " VALUES (?, ?, 'migration', '', 'stored before bounds were checked', ?, ?, ?, ?, ?)",
        [(uuid.uuid4().hex, now, str(p)[:4096], st, str(m)[:300], len(str(p)), len(str(p)[:4096])) for st, m, p in bad],
    )
    conn.execute(f"DELETE FROM summaries WHERE {where}")
    conn.execute(
        "UPDATE stores SET last_window_s = (SELECT MAX(window_start_s) FROM summaries s WHERE s.store = stores.store)"
    )
    conn.execute(f"UPDATE stores SET connection = 0, status_order = -1 WHERE connection > {CONNECTION_MAX}")


_SUMMARY_COLUMNS = (
    "msg_id, schema_id, store, stream, tier, item, seq, window_start, window_start_s, window_seconds, mechanism,"
    " entries, exits, epsilon, rho, noise_variance, payload, received_at, worker, amount"
)

Step = str | Callable[["Connection"], None]

MIGRATIONS: list[tuple[str, tuple[Step, ...]]] = [
    (
        "0001_core",
        (
            """CREATE TABLE IF NOT EXISTS summaries (
                msg_id TEXT PRIMARY KEY,
                schema_id TEXT NOT NULL,
                store TEXT NOT NULL,
                stream TEXT NOT NULL,
                tier TEXT NOT NULL,
                item TEXT NOT NULL,
                seq BIGINT NOT NULL,
                window_start TEXT NOT NULL,
                window_start_s BIGINT NOT NULL,
                window_seconds INTEGER NOT NULL,
                mechanism TEXT NOT NULL,
                entries BIGINT,
                exits BIGINT,
                epsilon DOUBLE PRECISION,
                rho DOUBLE PRECISION,
                noise_variance DOUBLE PRECISION NOT NULL,
                payload TEXT NOT NULL,
                received_at DOUBLE PRECISION NOT NULL,
                worker TEXT NOT NULL)""",
            "CREATE INDEX IF NOT EXISTS summaries_store_window ON summaries (store, stream, window_start_s)",
            "CREATE INDEX IF NOT EXISTS summaries_window ON summaries (stream, window_start_s)",
            "CREATE INDEX IF NOT EXISTS summaries_store_seq ON summaries (store, seq)",
            "CREATE INDEX IF NOT EXISTS summaries_received ON summaries (received_at)",
            """CREATE TABLE IF NOT EXISTS rejected (
                id TEXT PRIMARY KEY,
                received_at DOUBLE PRECISION NOT NULL,
                worker TEXT NOT NULL,
                topic TEXT NOT NULL,
                reason TEXT NOT NULL,
                payload TEXT NOT NULL)""",
            """CREATE TABLE IF NOT EXISTS stores (
                store TEXT PRIMARY KEY,
                state TEXT NOT NULL,
                connection BIGINT NOT NULL,
                status_order BIGINT NOT NULL,
                status_at DOUBLE PRECISION,
                agent TEXT NOT NULL,
                first_seen_at DOUBLE PRECISION NOT NULL,
                last_seen_at DOUBLE PRECISION NOT NULL,
                last_summary_at DOUBLE PRECISION,
                last_window_s BIGINT,
                window_seconds INTEGER)""",
            """CREATE TABLE IF NOT EXISTS seq_gaps (
                store TEXT NOT NULL,
                first_missing BIGINT NOT NULL,
                last_missing BIGINT NOT NULL,
                opened_at DOUBLE PRECISION NOT NULL,
                closed_at DOUBLE PRECISION,
                PRIMARY KEY (store, first_missing, last_missing))""",
            """CREATE TABLE IF NOT EXISTS benchmarks (
                metric TEXT NOT NULL,
                window_start_s BIGINT NOT NULL,
                window_seconds INTEGER NOT NULL,
                n_shops INTEGER NOT NULL,
                p25 DOUBLE PRECISION NOT NULL,
                median DOUBLE PRECISION NOT NULL,
                p75 DOUBLE PRECISION NOT NULL,
                payload TEXT NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (metric, window_start_s))""",
            """CREATE TABLE IF NOT EXISTS alerts (
                alert_id TEXT PRIMARY KEY,
                store TEXT NOT NULL,
                kind TEXT NOT NULL,
                window_start_s BIGINT,
                payload TEXT NOT NULL,
                raised_at DOUBLE PRECISION NOT NULL)""",
            "CREATE INDEX IF NOT EXISTS alerts_store ON alerts (store, raised_at)",
            "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
        ),
    ),
    (
        # The single value of one-value payloads (POS sales: baskets or revenue_cents), for SQL aggregation.
        "0002_amount",
        (
            "ALTER TABLE summaries ADD COLUMN amount BIGINT",
            _backfill_amount,
        ),
    ),
    (
        # Benchmarks per window length: a coop's 15-minute and hourly benchmarks of the same start are two rows.
        "0003_benchmarks_per_window_length",
        (
            """CREATE TABLE benchmarks_by_length (
                metric TEXT NOT NULL,
                window_start_s BIGINT NOT NULL,
                window_seconds INTEGER NOT NULL,
                n_shops INTEGER NOT NULL,
                p25 DOUBLE PRECISION NOT NULL,
                median DOUBLE PRECISION NOT NULL,
                p75 DOUBLE PRECISION NOT NULL,
                payload TEXT NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (metric, window_seconds, window_start_s))""",
            "INSERT INTO benchmarks_by_length (metric, window_start_s, window_seconds, n_shops, p25, median, p75,"
            " payload, updated_at) SELECT metric, window_start_s, window_seconds, n_shops, p25, median, p75, payload,"
            " updated_at FROM benchmarks",
            "DROP TABLE benchmarks",
            "ALTER TABLE benchmarks_by_length RENAME TO benchmarks",
        ),
    ),
    (
        # Message ids are unique per store (the store of the topic), never globally: the primary key becomes
        # (store, msg_id), rebuilt with every row kept. Refusals get their store, a quota and a summary.
        "0004_ids_per_store_and_bounded_refusals",
        (
            """CREATE TABLE summaries_v4 (
                msg_id TEXT NOT NULL,
                schema_id TEXT NOT NULL,
                store TEXT NOT NULL,
                stream TEXT NOT NULL,
                tier TEXT NOT NULL,
                item TEXT NOT NULL,
                seq BIGINT NOT NULL,
                window_start TEXT NOT NULL,
                window_start_s BIGINT NOT NULL,
                window_seconds INTEGER NOT NULL,
                mechanism TEXT NOT NULL,
                entries BIGINT,
                exits BIGINT,
                epsilon DOUBLE PRECISION,
                rho DOUBLE PRECISION,
                noise_variance DOUBLE PRECISION NOT NULL,
                payload TEXT NOT NULL,
                received_at DOUBLE PRECISION NOT NULL,
                worker TEXT NOT NULL,
                amount BIGINT,
                PRIMARY KEY (store, msg_id))""",
            f"INSERT INTO summaries_v4 ({_SUMMARY_COLUMNS}) SELECT {_SUMMARY_COLUMNS} FROM summaries",
            "DROP TABLE summaries",
            "ALTER TABLE summaries_v4 RENAME TO summaries",
            "CREATE INDEX IF NOT EXISTS summaries_store_window ON summaries (store, stream, window_start_s)",
            "CREATE INDEX IF NOT EXISTS summaries_window ON summaries (stream, window_start_s)",
            "CREATE INDEX IF NOT EXISTS summaries_store_seq ON summaries (store, seq)",
            "CREATE INDEX IF NOT EXISTS summaries_received ON summaries (received_at)",
            "ALTER TABLE rejected ADD COLUMN store TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE rejected ADD COLUMN detail TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE rejected ADD COLUMN size BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE rejected ADD COLUMN kept_bytes BIGINT NOT NULL DEFAULT 0",
            "CREATE INDEX IF NOT EXISTS rejected_store ON rejected (store, received_at)",
            "CREATE INDEX IF NOT EXISTS rejected_received ON rejected (received_at)",
            """CREATE TABLE IF NOT EXISTS rejected_summary (
                store TEXT NOT NULL,
                reason TEXT NOT NULL,
                refused BIGINT NOT NULL,
                refused_bytes BIGINT NOT NULL,
                kept BIGINT NOT NULL,
                first_at DOUBLE PRECISION NOT NULL,
                last_at DOUBLE PRECISION NOT NULL,
                last_topic TEXT NOT NULL,
                last_detail TEXT NOT NULL,
                PRIMARY KEY (store, reason))""",
            """CREATE TABLE IF NOT EXISTS rejected_recent (
                store TEXT NOT NULL,
                reason TEXT NOT NULL,
                minute BIGINT NOT NULL,
                refused BIGINT NOT NULL,
                PRIMARY KEY (store, reason, minute))""",
            _backfill_rejected,
            _quarantine_out_of_bounds,
        ),
    ),
    (
        # Dashboard sign-in (hub/auth.py): accounts, sessions (only a hash of the cookie is stored), and who
        # acknowledged which alert (the alert itself is kept).
        "0100_dashboard_users_sessions_alert_acks",
        (
            """CREATE TABLE IF NOT EXISTS hub_users (
                name TEXT PRIMARY KEY,
                role TEXT NOT NULL,
                store TEXT,
                password_hash TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL)""",
            """CREATE TABLE IF NOT EXISTS hub_sessions (
                token_hash TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                csrf TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL)""",
            """CREATE TABLE IF NOT EXISTS alert_acks (
                alert_id TEXT PRIMARY KEY,
                acked_by TEXT NOT NULL,
                acked_at DOUBLE PRECISION NOT NULL)""",
        ),
    ),
    (
        # Secure aggregation (hub/secagg.py): the rounds the hub ran (planned by the operator, one at a time)
        # and the district totals they released. A total is the sum over `shops` of true values plus each
        # shop's noise share, so its noise variance is stored beside it; an aborted round stores no total.
        "0110_secure_aggregation",
        (
            """CREATE TABLE IF NOT EXISTS secagg_rounds (
                round_id TEXT PRIMARY KEY,
                stream TEXT NOT NULL,
                cells TEXT NOT NULL,
                threshold INTEGER NOT NULL,
                value_bound BIGINT NOT NULL,
                sensitivity INTEGER NOT NULL,
                rho TEXT NOT NULL,
                colluders INTEGER NOT NULL,
                neighbours INTEGER NOT NULL,
                status TEXT NOT NULL,
                participants INTEGER,
                shops INTEGER,
                reason TEXT NOT NULL,
                planned_at DOUBLE PRECISION NOT NULL,
                finished_at DOUBLE PRECISION)""",
            """CREATE TABLE IF NOT EXISTS secagg_district_totals (
                round_id TEXT NOT NULL,
                stream TEXT NOT NULL,
                key TEXT NOT NULL,
                field TEXT NOT NULL,
                window_start_ns BIGINT NOT NULL,
                window_ns BIGINT NOT NULL,
                total BIGINT NOT NULL,
                noise_variance DOUBLE PRECISION NOT NULL,
                shops INTEGER NOT NULL,
                PRIMARY KEY (round_id, stream, key, field, window_start_ns))""",
            "CREATE INDEX IF NOT EXISTS secagg_totals_window ON secagg_district_totals (stream, window_start_ns)",
        ),
    ),
    (
        # Data licensing (hub/licensing.py): the queries the hub signed and published, and each shop's answer
        # or refusal, once per (query, shop); credits owed are summed from the answers.
        "0120_licensing",
        (
            """CREATE TABLE IF NOT EXISTS licensing_queries (
                query_id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                params TEXT NOT NULL,
                requester TEXT NOT NULL,
                purpose TEXT NOT NULL,
                epsilon TEXT NOT NULL,
                credit_cents BIGINT NOT NULL,
                expires TEXT NOT NULL,
                nonce TEXT NOT NULL UNIQUE,
                signed TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL)""",
            """CREATE TABLE IF NOT EXISTS licensing_answers (
                query_id TEXT NOT NULL,
                store TEXT NOT NULL,
                status TEXT NOT NULL,
                reason TEXT NOT NULL,
                answer_values TEXT,
                noise_scale DOUBLE PRECISION,
                credit_cents BIGINT NOT NULL,
                received_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (query_id, store))""",
        ),
    ),
    (
        # The coop's forecast models (hub/forecast_task.py), each computed from secagg_district_totals only.
        "0130_forecasts",
        (
            """CREATE TABLE IF NOT EXISTS coop_forecast_models (
                newest_window_ns BIGINT PRIMARY KEY,
                computed_at DOUBLE PRECISION NOT NULL,
                rows_used BIGINT NOT NULL,
                payload TEXT NOT NULL)""",
        ),
    ),
    (
        # District licensing queries combined by secure aggregation (hub/licensing_rounds.py): whether a query
        # asks for that, the round planned for it and how that went; a round may name its participants.
        "0140_district_queries",
        (
            "ALTER TABLE licensing_queries ADD COLUMN combine TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE licensing_queries ADD COLUMN round_id TEXT",
            "ALTER TABLE licensing_queries ADD COLUMN district_note TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE secagg_rounds ADD COLUMN participant_list TEXT",
        ),
    ),
]

_PLACEHOLDER = re.compile(r"\?")


class Connection:
    """One connection to SQLite or PostgreSQL with a common, small surface."""

    def __init__(self, raw: Any, is_pg: bool) -> None:
        self.raw, self.is_pg = raw, is_pg

    def _sql(self, sql: str) -> str:
        return _PLACEHOLDER.sub("%s", sql) if self.is_pg else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        cur = self.raw.execute(self._sql(sql), tuple(params))
        return int(cur.rowcount or 0) if cur.rowcount and cur.rowcount > 0 else 0

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """Run one statement per row; returns the total number of rows changed."""
        rows = [tuple(r) for r in rows]
        if not rows:
            return 0
        if self.is_pg:
            with self.raw.cursor() as cur:
                cur.executemany(self._sql(sql), rows)
                return max(int(cur.rowcount), 0)
        cur = self.raw.executemany(sql, rows)
        return max(int(cur.rowcount), 0)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self.raw.execute(self._sql(sql), tuple(params)).fetchall())

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """All statements inside commit together or not at all."""
        if self.is_pg:
            with self.raw.transaction():
                yield self
            return
        self.raw.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            self.raw.execute("ROLLBACK")
            raise
        self.raw.execute("COMMIT")

    def close(self) -> None:
        self.raw.close()


class Database:
    """Where the hub's tables live: a SQLite file path or a postgresql:// DSN."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_pg = is_postgres_dsn(url)

    @property
    def kind(self) -> str:
        return "postgresql" if self.is_pg else "sqlite"

    def connect(self) -> Connection:
        if self.is_pg:
            import psycopg

            try:
                raw: Any = psycopg.connect(self.url, autocommit=True)
            except psycopg.Error as exc:
                raise StorageError(f"cannot connect to PostgreSQL ({str(exc).strip()[:200]})") from None
            return Connection(raw, True)
        Path(self.url).parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # owner-only: outside systemd the umask may be 022
            os.close(os.open(self.url, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        try:
            raw = sqlite3.connect(self.url, isolation_level=None, check_same_thread=False, timeout=30)
            raw.execute("PRAGMA journal_mode=WAL")
            # The hub acknowledges a message only after its batch commits; FULL makes that survive power loss.
            raw.execute("PRAGMA synchronous=FULL")
            raw.execute("PRAGMA busy_timeout=30000")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open SQLite database {self.url} ({exc})") from None
        return Connection(raw, False)

    def migrate(self) -> list[str]:
        """Apply missing migrations (safe when several workers start at once); returns those applied."""
        conn = self.connect()
        applied: list[str] = []
        try:
            with conn.transaction():
                if conn.is_pg:
                    # Workers starting together would race on CREATE TABLE; one waits for the other.
                    conn.query("SELECT pg_advisory_xact_lock(724242)")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS hub_migrations (name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION)"
                )
                done = {r[0] for r in conn.query("SELECT name FROM hub_migrations")}
                for name, statements in MIGRATIONS:
                    if name in done:
                        continue
                    for statement in statements:
                        if isinstance(statement, str):
                            conn.execute(statement)
                        else:
                            statement(conn)
                    conn.execute("INSERT INTO hub_migrations (name, applied_at) VALUES (?, ?)", (name, time.time()))
                    applied.append(name)
        finally:
            conn.close()
        return applied
