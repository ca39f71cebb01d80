"""Schema migrations: small functions run once each, in order, and recorded in `_migrations`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import sqlite_utils

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


@migration("0004_event_windows")
def _event_windows(db: sqlite_utils.Database) -> None:
    # The window an event counts in is fixed once, when its time is trusted (at ingest on a synced
    # clock, or when the clock syncs). A wall-clock jump can then neither lose nor double-count it.
    db.execute("ALTER TABLE events ADD COLUMN window_ns INTEGER")
    db.execute("CREATE INDEX events_window ON events(window_ns)")


@migration("0005_baskets")
def _baskets(db: sqlite_utils.Database) -> None:
    # POS baskets and their lines stay on the box; only bounded, noisy category tables leave.
    db.execute(
        """CREATE TABLE baskets (
            id INTEGER PRIMARY KEY,
            boot_id TEXT NOT NULL, mono_ns INTEGER NOT NULL, wall_ns INTEGER NOT NULL,
            synced INTEGER NOT NULL, driver TEXT NOT NULL, source_id TEXT NOT NULL,
            kind TEXT NOT NULL, payment TEXT NOT NULL, currency TEXT NOT NULL, total_cents INTEGER NOT NULL,
            flagged TEXT NOT NULL, pos_time TEXT NOT NULL, window_ns INTEGER,
            UNIQUE (driver, source_id))"""
    )
    db.execute("CREATE INDEX baskets_window ON baskets(window_ns)")
    db.execute(
        """CREATE TABLE basket_lines (
            basket_id INTEGER NOT NULL REFERENCES baskets(id) ON DELETE CASCADE,
            name TEXT NOT NULL, sku TEXT NOT NULL, pos_category TEXT NOT NULL, category TEXT NOT NULL,
            quantity INTEGER NOT NULL, unit_price_cents INTEGER NOT NULL, line_total_cents INTEGER NOT NULL)"""
    )
    db.execute("CREATE INDEX basket_lines_basket ON basket_lines(basket_id)")


@migration("0006_district")
def _district(db: sqlite_utils.Database) -> None:
    # What the coop's hub sends back: district benchmarks (public post-processing) and this shop's alerts.
    db.execute(
        """CREATE TABLE district_benchmarks (
            metric TEXT NOT NULL, window_start TEXT NOT NULL, n_shops INTEGER NOT NULL,
            p25 REAL NOT NULL, median REAL NOT NULL, p75 REAL NOT NULL, received_wall_ns INTEGER NOT NULL,
            PRIMARY KEY (metric, window_start))"""
    )
    db.execute(
        """CREATE TABLE hub_alerts (
            topic TEXT PRIMARY KEY, payload TEXT NOT NULL, received_wall_ns INTEGER NOT NULL)"""
    )


@migration("0007_unsynced_index")
def _unsynced_index(db: sqlite_utils.Database) -> None:
    # Every window tick looks for readings still stamped on an unsynchronised clock; partial indexes
    # keep that a lookup of the (usually empty) unsynced set instead of a scan of all raw events.
    db.execute("CREATE INDEX events_unsynced ON events(boot_id) WHERE synced = 0")
    db.execute("CREATE INDEX baskets_unsynced ON baskets(boot_id) WHERE synced = 0")


@migration("0008_pos_source_ids")
def _pos_source_ids(db: sqlite_utils.Database) -> None:
    # Which POS records (order, receipt, file row) were already counted, kept far longer than the raw
    # baskets so that a late duplicate (a webhook replayed weeks later) is never counted again. Compact:
    # a 16-byte digest of (driver, source id) and when it was first seen.
    db.execute(
        """CREATE TABLE pos_source_ids (
            digest BLOB PRIMARY KEY, first_seen_wall_ns INTEGER NOT NULL) WITHOUT ROWID"""
    )
    db.execute("CREATE INDEX pos_source_ids_age ON pos_source_ids(first_seen_wall_ns)")
    rows = db.execute("SELECT driver, source_id, wall_ns FROM baskets").fetchall()
    db.conn.executemany(
        "INSERT OR IGNORE INTO pos_source_ids VALUES (?, ?)",
        [(source_digest(driver, source_id), wall) for driver, source_id, wall in rows],
    )


def source_digest(driver: str, source_id: str) -> bytes:
    """The key of one POS record in `pos_source_ids` (SHA-256, first 16 bytes)."""
    return hashlib.sha256(f"{driver}\0{source_id}".encode()).digest()[:16]


@migration("0009_outbox_rejections")
def _outbox_rejections(db: sqlite_utils.Database) -> None:
    # A PUBACK with a failure reason code is a refusal, not a delivery: the row stays pending and
    # records why and when to try again. `late` is the payload's own flag, kept beside it so the MQTT
    # v5 user property copies the payload instead of computing a second answer.
    for column in (
        "rejections INTEGER NOT NULL DEFAULT 0",
        "reject_code INTEGER",
        "reject_reason TEXT",
        "first_rejected_wall_ns INTEGER",
        "last_rejected_wall_ns INTEGER",
        "next_attempt_wall_ns INTEGER",
        "late INTEGER NOT NULL DEFAULT 0",
    ):
        db.execute(f"ALTER TABLE outbox ADD COLUMN {column}")
    db.execute("UPDATE outbox SET late = 1 WHERE json_valid(payload) AND json_extract(payload, '$.late') = 1")
    # Refused pending rows are few (usually none); this keeps "is an older row of this topic refused?"
    # a lookup in an empty index on every batch.
    db.execute("CREATE INDEX outbox_refused ON outbox(topic, seq) WHERE delivered_wall_ns IS NULL AND rejections > 0")


@migration("0010_driver_state")
def _driver_state(db: sqlite_utils.Database) -> None:
    # A driver's own small bookkeeping (a cumulative counter's baseline), written in the same
    # transaction as the readings it accounts for, so a restart counts only what is new. Local only.
    db.execute(
        """CREATE TABLE driver_state (
            driver TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, updated_wall_ns INTEGER NOT NULL,
            PRIMARY KEY (driver, key)) WITHOUT ROWID"""
    )


@migration("0011_secure_aggregation")
def _secure_aggregation(db: sqlite_utils.Database) -> None:
    # One row per secure-aggregation round this shop took part in: what it put in (true values and its own
    # noise share: local only, like the raw events), what it charged, and how the round ended, for the
    # ledger and the owner's page. `state` walks joined -> input_sent -> released | aborted | refused.
    db.execute(
        """CREATE TABLE secagg_rounds (
            round_id TEXT PRIMARY KEY, round_tag TEXT NOT NULL, stream TEXT NOT NULL, cells TEXT NOT NULL,
            window_ns INTEGER NOT NULL, participants INTEGER NOT NULL, threshold INTEGER NOT NULL,
            rho TEXT NOT NULL, share_sigma2 TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '',
            true_values TEXT, noise_values TEXT, survivors INTEGER, included INTEGER,
            joined_wall_ns INTEGER NOT NULL, input_sent_wall_ns INTEGER, finished_wall_ns INTEGER)"""
    )
    # The differencing trap: a window's input of one stream enters at most one round, ever. Written in the
    # transaction that charges the round, before the masked input leaves; the primary key refuses a second.
    db.execute(
        """CREATE TABLE secagg_windows (
            stream TEXT NOT NULL, window_start_ns INTEGER NOT NULL, round_id TEXT NOT NULL
                REFERENCES secagg_rounds(round_id),
            PRIMARY KEY (stream, window_start_ns)) WITHOUT ROWID"""
    )


@migration("0012_privacy_filter")
def _privacy_filter(db: sqlite_utils.Database) -> None:
    # Every release that touches a window spends from that window's lifetime budget (the privacy filter,
    # privacy/accountant.py): hourly summaries, secure-aggregation contributions and licensed query
    # answers alike. `kind` says which; a query answer that spans many windows has one spend per window.
    db.execute("ALTER TABLE privacy_spend ADD COLUMN kind TEXT NOT NULL DEFAULT 'summary'")
    db.execute("CREATE INDEX privacy_spend_ledger ON privacy_spend(ledger_id)")
    # Licensing queries the coop sent (agent/licensing): verified before they are stored; the nonce is
    # unique, so a replayed query is refused by the database itself. `status` moves received -> pending
    # (manual approval) -> approved -> answered | refused, once.
    db.execute(
        """CREATE TABLE licensing_queries (
            query_id TEXT PRIMARY KEY, nonce TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, params TEXT NOT NULL,
            requester TEXT NOT NULL, purpose TEXT NOT NULL, epsilon TEXT NOT NULL, credit_cents INTEGER NOT NULL,
            expires_wall_ns INTEGER NOT NULL, signed TEXT NOT NULL, received_wall_ns INTEGER NOT NULL,
            status TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '', ledger_id INTEGER,
            decided_wall_ns INTEGER)"""
    )
    db.execute("CREATE INDEX licensing_queries_status ON licensing_queries(status)")


@migration("0013_watermark")
def _watermark(db: sqlite_utils.Database) -> None:
    # Windows the coop's watermark says were released but that neither the database nor the release
    # journal holds (both lost): skipped, never drawn again, and recorded here as one row per run of
    # windows, so `shopkeeper ledger` and `ledger verify` can account for every window up to the watermark.
    db.execute(
        """CREATE TABLE lost_windows (
            from_ns INTEGER NOT NULL PRIMARY KEY, to_ns INTEGER NOT NULL, windows INTEGER NOT NULL,
            watermark_ns INTEGER NOT NULL, recorded_wall_ns INTEGER NOT NULL)"""
    )


@migration("0014_forecasts")
def _forecasts(db: sqlite_utils.Database) -> None:
    # The shop's own forecasts (agent/forecast), local only. `forecast_history` keeps hourly footfall and
    # daily category sales per local day past the raw tables' retention, so a year of history can be had
    # while raw events go after 30 days. A run's values and chosen models are written in one transaction.
    db.execute(
        """CREATE TABLE forecast_history (
            series TEXT NOT NULL, day TEXT NOT NULL, step INTEGER NOT NULL, value INTEGER NOT NULL,
            PRIMARY KEY (series, day, step)) WITHOUT ROWID"""
    )
    db.execute(
        """CREATE TABLE forecast_runs (
            id INTEGER PRIMARY KEY, made_wall_ns INTEGER NOT NULL, zone TEXT NOT NULL, first_day TEXT NOT NULL,
            status TEXT NOT NULL, reason TEXT NOT NULL, fit_seconds REAL NOT NULL)"""
    )
    db.execute(
        """CREATE TABLE forecast_models (
            run_id INTEGER NOT NULL REFERENCES forecast_runs(id) ON DELETE CASCADE, series TEXT NOT NULL,
            model TEXT NOT NULL, coop_weight REAL, history_days INTEGER NOT NULL, holdout TEXT NOT NULL,
            PRIMARY KEY (run_id, series))"""
    )
    db.execute(
        """CREATE TABLE forecast_values (
            run_id INTEGER NOT NULL REFERENCES forecast_runs(id) ON DELETE CASCADE, series TEXT NOT NULL,
            day TEXT NOT NULL, step INTEGER NOT NULL, start_ns INTEGER NOT NULL,
            point REAL NOT NULL, lo80 REAL NOT NULL, hi80 REAL NOT NULL,
            PRIMARY KEY (run_id, series, day, step))"""
    )
    # The coop's district model as last received (retained on the hub's forecast topic): one row.
    db.execute(
        """CREATE TABLE coop_forecast_model (
            id INTEGER PRIMARY KEY CHECK (id = 1), payload TEXT NOT NULL, received_wall_ns INTEGER NOT NULL)"""
    )
