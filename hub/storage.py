"""The hub's write path: one transaction per batch of incoming messages.

Summaries are inserted with ON CONFLICT (store, msg_id) DO NOTHING, so a redelivered message (agent
retry, QoS 1 redelivery, a second worker) is stored once. Ids are unique per store, never globally: a
message's store is the store of its topic (which the broker's ACL ties to the sender), so one store
reusing another's msg_id stores its own row and cannot shadow the other's summary. Status messages move
a store's state forward only: (connection, online < offline) orders births and wills, so a stale retained
message can never undo a newer one. Refused messages are counted per store and reason and kept aside within a quota
per store (hub/refusals.py).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

from hub.contract import Parsed, Rejected, Status, Summary
from hub.db import Connection
from hub.refusals import record

INSERT_SUMMARY = (
    "INSERT INTO summaries (msg_id, schema_id, store, stream, tier, item, seq, window_start, window_start_s,"
    " window_seconds, mechanism, entries, exits, amount, epsilon, rho, noise_variance, payload, received_at, worker)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (store, msg_id) DO NOTHING"
)

# A summary proves the store is alive; it never changes the online/offline state.
TOUCH_STORE = (
    "INSERT INTO stores (store, state, connection, status_order, status_at, agent, first_seen_at, last_seen_at,"
    " last_summary_at, last_window_s, window_seconds) VALUES (?, 'unknown', 0, -1, NULL, '', ?, ?, ?, ?, ?)"
    " ON CONFLICT (store) DO UPDATE SET"
    " last_seen_at = CASE WHEN excluded.last_seen_at > stores.last_seen_at"
    "   THEN excluded.last_seen_at ELSE stores.last_seen_at END,"
    " last_summary_at = excluded.last_summary_at,"
    " last_window_s = CASE WHEN stores.last_window_s IS NULL OR excluded.last_window_s > stores.last_window_s"
    "   THEN excluded.last_window_s ELSE stores.last_window_s END,"
    " window_seconds = excluded.window_seconds"
)

UPSERT_STATUS = (
    "INSERT INTO stores (store, state, connection, status_order, status_at, agent, first_seen_at, last_seen_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (store) DO UPDATE SET"
    " state = CASE WHEN excluded.status_order > stores.status_order THEN excluded.state ELSE stores.state END,"
    " connection = CASE WHEN excluded.status_order > stores.status_order"
    "   THEN excluded.connection ELSE stores.connection END,"
    " agent = CASE WHEN excluded.status_order > stores.status_order THEN excluded.agent ELSE stores.agent END,"
    " status_at = CASE WHEN excluded.status_order > stores.status_order"
    "   THEN excluded.status_at ELSE stores.status_at END,"
    " status_order = CASE WHEN excluded.status_order > stores.status_order"
    "   THEN excluded.status_order ELSE stores.status_order END,"
    " last_seen_at = CASE WHEN excluded.last_seen_at > stores.last_seen_at"
    "   THEN excluded.last_seen_at ELSE stores.last_seen_at END"
)

ADD_COUNTER = (
    "INSERT INTO counters (name, value) VALUES (?, ?)"
    " ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value"
)


def status_order(status: Status) -> int:
    """Births and wills of one connection sort online before offline; later connections sort after."""
    return status.connection * 2 + (1 if status.state == "offline" else 0)


@dataclasses.dataclass
class BatchResult:
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    statuses: int = 0
    dropped: int = 0  # QoS 0 messages the full receive queue could not hold (hub/subscriber.py)


def store_batch(
    conn: Connection, worker: str, items: Sequence[Parsed], now: float | None = None, dropped: int = 0
) -> BatchResult:
    """Write one batch in one transaction; the caller acknowledges the messages only after this returns."""
    now = time.time() if now is None else now
    result = BatchResult(dropped=dropped)
    summaries = [m for m in items if isinstance(m, Summary)]
    statuses = [m for m in items if isinstance(m, Status)]
    rejected = [m for m in items if isinstance(m, Rejected)]
    with conn.transaction():
        if summaries:
            result.stored = conn.executemany(
                INSERT_SUMMARY,
                [
                    (
                        s.msg_id,
                        s.schema,
                        s.store,
                        s.stream,
                        s.tier,
                        s.key,
                        s.seq,
                        s.window_start,
                        s.window_start_s,
                        s.window_seconds,
                        s.mechanism,
                        s.entries,
                        s.exits,
                        s.amount,
                        s.epsilon,
                        s.rho,
                        s.noise_variance,
                        s.payload,
                        now,
                        worker,
                    )
                    for s in summaries
                ],
            )
            result.duplicates = len(summaries) - result.stored
            latest: dict[str, Summary] = {}
            for s in summaries:
                if s.store not in latest or s.window_start_s > latest[s.store].window_start_s:
                    latest[s.store] = s
            conn.executemany(
                TOUCH_STORE,
                # Sorted, so two workers lock store rows in the same order and cannot deadlock each other.
                [(s.store, now, now, now, s.window_start_s, s.window_seconds) for _, s in sorted(latest.items())],
            )
        if statuses:
            ordered = sorted(statuses, key=lambda st: st.store)
            conn.executemany(
                UPSERT_STATUS,
                [(s.store, s.state, s.connection, status_order(s), now, s.agent, now, now) for s in ordered],
            )
            result.statuses = len(statuses)
        if rejected:
            record(conn, worker, rejected, now)
            result.rejected = len(rejected)
        counts = {
            "stored": result.stored,
            "duplicates": result.duplicates,
            "rejected": result.rejected,
            "statuses": result.statuses,
            "dropped": result.dropped,
        }
        # One counter row per worker, so workers never wait on each other's counter updates.
        conn.executemany(ADD_COUNTER, [(f"{k}@{worker}", v) for k, v in counts.items() if v])
    return result


def counters(conn: Connection) -> dict[str, int]:
    """Totals over all workers: stored, duplicates, rejected, statuses."""
    totals: dict[str, int] = {}
    for name, value in conn.query("SELECT name, value FROM counters"):
        key = str(name).split("@", 1)[0]
        totals[key] = totals.get(key, 0) + int(value)
    return totals
