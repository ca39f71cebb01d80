"""Refused messages: every one counted per store and reason, a bounded few kept aside to look at.

One member must not be able to fill the hub's disk with junk, so what is kept is bounded per store
(`KEEP_ROWS` rows, `KEEP_BYTES` bytes, `KEEP_AGE_S` of age); past the quota a refusal is only counted.
Counting is always exact: `rejected_summary` holds one row per (store, reason) for all time, and
`rejected_recent` one per (store, reason, minute) for the last hour, which is what /healthz reads to
name the store that misbehaves now. Reasons come from a fixed set (hub/contract.py, hub/wire.py,
hub/payload_bounds.py), so both tables stay small whatever a member sends.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hub.contract import Rejected
    from hub.db import Connection

KEEP_ROWS = 200  # per store
KEEP_BYTES = 1024 * 1024  # per store: payload, topic and detail text kept
KEEP_AGE_S = 7 * 86400
RECENT_S = 3600  # how long per-minute counts live
HEALTH_WINDOW_S = 600  # /healthz names stores with refusals in the last ten minutes
KEPT_PAYLOAD = 4096  # characters of a refused payload kept (enough to see what it was)

_SUMMARY = (
    "INSERT INTO rejected_summary (store, reason, refused, refused_bytes, kept, first_at, last_at, last_topic,"
    " last_detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (store, reason) DO UPDATE SET"
    " refused = rejected_summary.refused + excluded.refused,"
    " refused_bytes = rejected_summary.refused_bytes + excluded.refused_bytes,"
    " kept = rejected_summary.kept + excluded.kept, last_at = excluded.last_at,"
    " last_topic = excluded.last_topic, last_detail = excluded.last_detail"
)
_RECENT = (
    "INSERT INTO rejected_recent (store, reason, minute, refused) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (store, reason, minute) DO UPDATE SET refused = rejected_recent.refused + excluded.refused"
)
_KEEP = (
    "INSERT INTO rejected (id, received_at, worker, topic, reason, payload, store, detail, size, kept_bytes)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _printable(data: bytes) -> str:
    # Any bytes become text every database accepts (PostgreSQL refuses NUL in text).
    return data[:KEPT_PAYLOAD].decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def record(conn: Connection, worker: str, rejected: Sequence[Rejected], now: float | None = None) -> int:
    """Count every refusal and keep what the store's quota allows, inside the caller's transaction;
    returns how many were kept aside."""
    now = time.time() if now is None else now
    by_store: dict[str, list[Rejected]] = defaultdict(list)
    for item in rejected:
        by_store[item.store].append(item)
    kept_total = 0
    for store in sorted(by_store):  # sorted: two workers lock rows in the same order
        items = by_store[store]
        conn.execute("DELETE FROM rejected WHERE store = ? AND received_at < ?", (store, now - KEEP_AGE_S))
        rows, used = conn.query(
            "SELECT COUNT(*), COALESCE(SUM(kept_bytes), 0) FROM rejected WHERE store = ?", (store,)
        )[0]
        rows, used = int(rows), int(used)
        keep = []
        kept: dict[str, int] = defaultdict(int)
        for item in items:
            topic, payload, detail = item.topic[:500], _printable(item.payload), item.detail[:300]
            cost = len(topic) + len(payload) + len(detail)
            if rows < KEEP_ROWS and used + cost <= KEEP_BYTES:
                rows, used = rows + 1, used + cost
                kept[item.reason] += 1
                keep.append(
                    (uuid.uuid4().hex, now, worker, topic, item.reason, payload, store, detail, item.size, cost)
                )
        conn.executemany(_KEEP, keep)
        kept_total += len(keep)
        per_reason: dict[str, list[Rejected]] = defaultdict(list)
        for item in items:
            per_reason[item.reason].append(item)
        minute = int(now // 60) * 60
        summary, recent = [], []
        for reason in sorted(per_reason):
            group = per_reason[reason]
            last = group[-1]
            summary.append(
                (
                    store,
                    reason,
                    len(group),
                    sum(r.size for r in group),
                    kept[reason],
                    now,
                    now,
                    last.topic[:500],
                    last.detail[:300],
                )
            )
            recent.append((store, reason, minute, len(group)))
        conn.executemany(_SUMMARY, summary)
        conn.executemany(_RECENT, recent)
    return kept_total


def prune(conn: Connection, now: float | None = None) -> None:
    """Drop kept refusals past their age and per-minute counts past the hour (the summary keeps the totals)."""
    now = time.time() if now is None else now
    with conn.transaction():
        conn.execute("DELETE FROM rejected WHERE received_at < ?", (now - KEEP_AGE_S,))
        conn.execute("DELETE FROM rejected_recent WHERE minute < ?", (now - RECENT_S,))


def misbehaving(conn: Connection, now: float | None = None, window_s: int = HEALTH_WINDOW_S) -> list[str]:
    """One line per store with refusals in the last `window_s`, most refused first:
    `store-x: 120 messages refused in the last 10 min: values.entries out of range`."""
    now = time.time() if now is None else now
    rows = conn.query(
        "SELECT store, reason, SUM(refused) FROM rejected_recent WHERE minute >= ? GROUP BY store, reason",
        (int((now - window_s) // 60) * 60,),
    )
    per_store: dict[str, dict[str, int]] = defaultdict(dict)
    for store, reason, refused in rows:
        per_store[str(store)][str(reason)] = int(refused)
    lines = []
    for store, reasons in sorted(per_store.items(), key=lambda kv: (-sum(kv[1].values()), kv[0])):
        top = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        others = f" (and {len(top) - 1} other reason(s))" if len(top) > 1 else ""
        name = store or "(topic naming no store)"
        minutes = window_s // 60
        lines.append(f"{name}: {sum(reasons.values())} messages refused in the last {minutes} min: {top[0][0]}{others}")
    return lines


def health_text(conn: Connection, now: float | None = None) -> str:
    """The body of /healthz: `ok`, or `degraded` and one line per misbehaving store."""
    lines = misbehaving(conn, now)
    return "ok\n" if not lines else "degraded: messages refused\n" + "".join(f"{line}\n" for line in lines)
