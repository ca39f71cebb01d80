"""Read queries shared by the periodic tasks, the dashboard and the JSON API (SQLite and PostgreSQL).

Streams come from the contract (agent/contract), never from a hard-coded suffix: a stream's rows are
found by its topic segment and window name for every window length the contract allows, and every
result is per (shop, window length, window start), so shops on 15-minute windows are compared on
15-minute windows, and a shop's series stays on its own length.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

from agent.contract import (
    ALL_KEY,
    FOOTFALL_DOOR,
    FOOTFALL_STORE,
    FOOTFALL_STREAMS,
    SALES_REVENUE,
    SALES_STREAMS,
    WINDOW_LENGTHS,
    StreamSpec,
)
from hub.db import Connection

ALL_BASKETS = ALL_KEY
CHUNK = 400  # placeholders per IN (...) list, well under SQLite's variable limit


@cache
def stream_names(specs: tuple[StreamSpec, ...], window_s: int | None = None) -> tuple[str, ...]:
    """The `stream` values of these streams at one window length, or at every length the contract allows.

    Matching exact names (rather than a LIKE on the segment) keeps the (stream, window_start_s) index in use.
    """
    lengths = WINDOW_LENGTHS if window_s is None else (window_s,)
    return tuple(spec.stream(s) for spec in specs for s in lengths)


def _in(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))


@dataclasses.dataclass(frozen=True)
class ShopWindow:
    """One shop's footfall in one window: released (noisy) entries, summed over its doors if per door."""

    store: str
    window_start_s: int
    window_seconds: int
    footfall: int
    values: int  # how many released values were summed
    noise_variance: float  # of `footfall`: the sum of those values' noise variances


def _chunks(values: list[Any]) -> Iterable[list[Any]]:
    for i in range(0, len(values), CHUNK):
        yield values[i : i + CHUNK]


def doors_per_store(conn: Connection, window_s: int | None = None) -> dict[tuple[str, int], int]:
    """How many doors each shop has ever reported per window length: a per-door window counts only when all of
    them are in."""
    names = stream_names((FOOTFALL_DOOR,), window_s)
    rows = conn.query(
        f"SELECT store, window_seconds, COUNT(DISTINCT item) FROM summaries WHERE stream IN ({_in(names)})"
        " GROUP BY store, window_seconds",
        names,
    )
    return {(str(r[0]), int(r[1])): int(r[2]) for r in rows}


def shop_windows(
    conn: Connection, windows: list[int] | None = None, store: str | None = None, window_s: int | None = None
) -> list[ShopWindow]:
    """Complete shop-windows of every length (or of `window_s`), optionally limited to some window starts or one
    store; sorted by store, length and start.

    A window counts for a shop when its store-total value is released (not suppressed), or else when
    every door of the shop has a released, unsuppressed value.
    """
    names = stream_names(FOOTFALL_STREAMS, window_s)
    total_names = set(stream_names((FOOTFALL_STORE,), window_s))
    # SUM(entries) cannot overflow SQLite's or PostgreSQL's 64-bit integers: every stored value lies within its
    # stream's bounds (|entries| <= 10^7, agent/contract/streams.py), checked by hub/payload_bounds.py before
    # anything is stored (older rows outside them are quarantined by migration 0004), so an overflow would take
    # more than 9 x 10^11 rows in one (store, window, stream) group.
    base = (
        "SELECT store, window_start_s, stream, window_seconds, SUM(entries), COUNT(entries),"
        f" SUM(noise_variance) FROM summaries WHERE stream IN ({_in(names)})"
    )
    params: list[Any] = list(names)
    if store is not None:
        base += " AND store = ?"
        params.append(store)
    group = " GROUP BY store, window_start_s, stream, window_seconds"
    rows: list[tuple[Any, ...]] = []
    if windows is None:
        rows = conn.query(base + group, params)
    else:
        for chunk in _chunks(sorted(set(windows))):
            rows += conn.query(base + f" AND window_start_s IN ({_in(chunk)})" + group, params + chunk)
    doors = doors_per_store(conn, window_s)
    chosen: dict[tuple[str, int, int], ShopWindow] = {}
    for shop, start, stream, seconds, total, n, variance in rows:
        key = (str(shop), int(seconds), int(start))
        is_total = stream in total_names
        complete = int(n) >= 1 if is_total else int(n) >= doors.get(key[:2], 1)
        if not complete or (key in chosen and not is_total):
            continue
        chosen[key] = ShopWindow(key[0], key[2], key[1], int(total), int(n), float(variance or 0.0))
    return [chosen[k] for k in sorted(chosen)]


@dataclasses.dataclass(frozen=True)
class ShopSales:
    """One shop's released (noisy) POS sales in one window: revenue per category, and its basket count."""

    store: str
    window_start_s: int
    window_seconds: int
    revenue: dict[str, int] | None  # every category the shop reports, or None when any is missing or suppressed
    baskets: int | None  # the `all` key of sales-count, None when missing or suppressed

    def shares(self) -> dict[str, float] | None:
        """Each category's share of the shop's revenue, negatives clamped to 0 (post-processing); None when
        revenue is incomplete or the clamped total is 0."""
        if self.revenue is None:
            return None
        clamped = {c: max(v, 0) for c, v in self.revenue.items()}
        total = sum(clamped.values())
        if total <= 0:
            return None
        return {c: v / total for c, v in sorted(clamped.items())}

    def basket_value(self) -> float | None:
        """Average basket value in cents: total revenue (sum over categories, clamped at 0) / `all` baskets."""
        if self.revenue is None or self.baskets is None or self.baskets <= 0:
            return None
        return max(sum(self.revenue.values()), 0) / self.baskets


def categories_per_store(conn: Connection, window_s: int | None = None) -> dict[tuple[str, int], int]:
    """How many revenue categories each shop has ever reported per window length: a window counts only when all
    of them are in."""
    names = stream_names((SALES_REVENUE,), window_s)
    rows = conn.query(
        f"SELECT store, window_seconds, COUNT(DISTINCT item) FROM summaries WHERE stream IN ({_in(names)})"
        " GROUP BY store, window_seconds",
        names,
    )
    return {(str(r[0]), int(r[1])): int(r[2]) for r in rows}


def shop_sales(
    conn: Connection, windows: list[int] | None = None, store: str | None = None, window_s: int | None = None
) -> list[ShopSales]:
    """Shops' sales per window (optionally some window starts, one store or one length), from the t2 sales
    streams; sorted by store, length and start."""
    names = stream_names(SALES_STREAMS, window_s)
    revenue_names = stream_names((SALES_REVENUE,), window_s)
    base = (
        "SELECT store, window_start_s, stream, item, window_seconds, amount FROM summaries"
        f" WHERE stream IN ({_in(names)}) AND (stream IN ({_in(revenue_names)}) OR item = ?)"
    )
    params: list[Any] = [*names, *revenue_names, ALL_BASKETS]
    if store is not None:
        base += " AND store = ?"
        params.append(store)
    rows: list[tuple[Any, ...]] = []
    if windows is None:
        rows = conn.query(base, params)
    else:
        for chunk in _chunks(sorted(set(windows))):
            rows += conn.query(base + f" AND window_start_s IN ({_in(chunk)})", params + chunk)
    expected = categories_per_store(conn, window_s)
    revenue_set = set(revenue_names)
    revenue: dict[tuple[str, int, int], dict[str, int | None]] = {}
    baskets: dict[tuple[str, int, int], int | None] = {}
    for shop, start, stream, item, window_seconds, amount in rows:
        key = (str(shop), int(window_seconds), int(start))
        value = None if amount is None else int(amount)
        if stream in revenue_set:
            revenue.setdefault(key, {})[str(item)] = value
        else:
            baskets[key] = value
    out = []
    for key in sorted(set(revenue) | set(baskets)):
        cats = revenue.get(key, {})
        complete = bool(cats) and len(cats) >= expected.get(key[:2], 1) and all(v is not None for v in cats.values())
        out.append(
            ShopSales(
                key[0],
                key[2],
                key[1],
                {c: int(v or 0) for c, v in cats.items()} if complete else None,
                baskets.get(key),
            )
        )
    return out


def _touched(conn: Connection, since: float, specs: tuple[StreamSpec, ...]) -> list[int]:
    names = stream_names(specs)
    return [
        int(r[0])
        for r in conn.query(
            f"SELECT DISTINCT window_start_s FROM summaries WHERE received_at >= ? AND stream IN ({_in(names)})",
            (since, *names),
        )
    ]


def sales_touched_since(conn: Connection, since: float) -> list[int]:
    """Window starts (any length) that received POS sales summaries at or after `since` (hub wall time)."""
    return _touched(conn, since, SALES_STREAMS)


def touched_since(conn: Connection, since: float) -> tuple[list[int], list[str]]:
    """Footfall window starts (any length) and stores that received summaries at or after `since` (hub time)."""
    windows = _touched(conn, since, FOOTFALL_STREAMS)
    stores = [str(r[0]) for r in conn.query("SELECT DISTINCT store FROM summaries WHERE received_at >= ?", (since,))]
    return windows, stores


def window_lengths(conn: Connection) -> list[int]:
    """Every window length some shop publishes now (its latest summary) or some benchmark was computed for."""
    rows = conn.query("SELECT DISTINCT window_seconds FROM stores WHERE window_seconds IS NOT NULL")
    rows += conn.query("SELECT DISTINCT window_seconds FROM benchmarks")
    return sorted({int(r[0]) for r in rows})


def rejections(conn: Connection) -> tuple[int, str | None]:
    """How many messages were refused (all of them, kept aside or only counted), and the latest reason."""
    total = int(conn.query("SELECT COALESCE(SUM(refused), 0) FROM rejected_summary")[0][0])
    latest = conn.query("SELECT reason FROM rejected_summary ORDER BY last_at DESC LIMIT 1")
    return total, (str(latest[0][0]) if latest else None)


def stores(conn: Connection) -> list[dict[str, Any]]:
    cols = (
        "store",
        "state",
        "connection",
        "status_at",
        "agent",
        "first_seen_at",
        "last_seen_at",
        "last_summary_at",
        "last_window_s",
        "window_seconds",
    )
    rows = conn.query(f"SELECT {', '.join(cols)} FROM stores ORDER BY store")
    return [dict(zip(cols, r, strict=True)) for r in rows]


def open_gaps(conn: Connection, store: str | None = None) -> list[dict[str, Any]]:
    sql = "SELECT store, first_missing, last_missing, opened_at FROM seq_gaps WHERE closed_at IS NULL"
    params: tuple[Any, ...] = ()
    if store is not None:
        sql += " AND store = ?"
        params = (store,)
    return [
        {"store": r[0], "first_missing": int(r[1]), "last_missing": int(r[2]), "opened_at": float(r[3])}
        for r in conn.query(sql + " ORDER BY store, first_missing", params)
    ]


def latest_benchmark_payload(
    conn: Connection, metric: str, window_start_s: int | None = None, window_s: int | None = None
) -> dict[str, Any] | None:
    """The published payload of one metric: for one window, or the newest window (of one length, or any)."""
    sql = "SELECT payload FROM benchmarks WHERE metric = ?"
    params: list[Any] = [metric]
    if window_s is not None:
        sql += " AND window_seconds = ?"
        params.append(window_s)
    if window_start_s is None:
        rows = conn.query(sql + " ORDER BY window_start_s DESC, window_seconds LIMIT 1", params)
    else:
        rows = conn.query(sql + " AND window_start_s = ? ORDER BY window_seconds LIMIT 1", [*params, window_start_s])
    return json.loads(rows[0][0]) if rows else None


def benchmarks(
    conn: Connection, metric: str = "footfall", limit: int = 24 * 7 * 8, window_s: int | None = None
) -> list[dict[str, Any]]:
    """The latest `limit` district benchmarks (of one window length, or of all), oldest first."""
    sql = "SELECT window_start_s, window_seconds, n_shops, p25, median, p75 FROM benchmarks WHERE metric = ?"
    params: list[Any] = [metric]
    if window_s is not None:
        sql += " AND window_seconds = ?"
        params.append(window_s)
    rows = conn.query(sql + " ORDER BY window_start_s DESC, window_seconds LIMIT ?", [*params, limit])
    cols = ("window_start_s", "window_seconds", "n_shops", "p25", "median", "p75")
    return [dict(zip(cols, r, strict=True)) for r in reversed(rows)]


def alerts(conn: Connection, store: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    sql = "SELECT store, kind, window_start_s, payload, raised_at FROM alerts"
    params: list[Any] = []
    if store is not None:
        sql += " WHERE store = ?"
        params.append(store)
    rows = conn.query(sql + " ORDER BY raised_at DESC LIMIT ?", [*params, limit])
    cols = ("store", "kind", "window_start_s", "payload", "raised_at")
    return [dict(zip(cols, r, strict=True)) for r in rows]


def latest_window(conn: Connection) -> int | None:
    """The newest window any shop released (on any stream)."""
    row = conn.query("SELECT MAX(last_window_s) FROM stores")
    return int(row[0][0]) if row and row[0][0] is not None else None


def newest_per_length(shops: Iterable[dict[str, Any]]) -> dict[int, int]:
    """The newest window start released by any shop, per window length (from `stores` rows)."""
    newest: dict[int, int] = {}
    for shop in shops:
        if shop["window_seconds"] is not None and shop["last_window_s"] is not None:
            seconds, last = int(shop["window_seconds"]), int(shop["last_window_s"])
            newest[seconds] = max(newest.get(seconds, last), last)
    return newest


def shop_streams(conn: Connection, store: str, limit: int = 200) -> list[dict[str, Any]]:
    """One shop's own latest released values on every stream and tier (for its own page only)."""
    rows = conn.query(
        "SELECT stream, tier, item, window_start, entries, exits, amount, epsilon, seq FROM summaries"
        " WHERE store = ? ORDER BY window_start_s DESC, stream, item LIMIT ?",
        (store, limit),
    )
    cols = ("stream", "tier", "item", "window_start", "entries", "exits", "amount", "epsilon", "seq")
    return [dict(zip(cols, r, strict=True)) for r in rows]


def benchmarks_between(
    conn: Connection, window_s: int, start_s: int, end_s: int, metric: str = "footfall"
) -> list[dict[str, Any]]:
    """District benchmarks of one window length with window starts in [start_s, end_s), oldest first."""
    cols = ("window_start_s", "window_seconds", "n_shops", "p25", "median", "p75")
    rows = conn.query(
        f"SELECT {', '.join(cols)} FROM benchmarks WHERE metric = ? AND window_seconds = ?"
        " AND window_start_s >= ? AND window_start_s < ? ORDER BY window_start_s",
        (metric, window_s, start_s, end_s),
    )
    return [dict(zip(cols, r, strict=True)) for r in rows]


def alerts_explained(
    conn: Connection, store: str | None = None, acked: bool | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Alerts newest first with their acknowledgement (kept, never deleted), optionally of one store or
    only (un)acknowledged ones."""
    sql = (
        "SELECT a.alert_id, a.store, a.kind, a.window_start_s, a.payload, a.raised_at, k.acked_by, k.acked_at"
        " FROM alerts a LEFT JOIN alert_acks k ON k.alert_id = a.alert_id WHERE 1 = 1"
    )
    params: list[Any] = []
    if store is not None:
        sql += " AND a.store = ?"
        params.append(store)
    if acked is not None:
        sql += " AND k.alert_id IS NOT NULL" if acked else " AND k.alert_id IS NULL"
    rows = conn.query(sql + " ORDER BY a.raised_at DESC, a.alert_id LIMIT ?", [*params, limit])
    cols = ("alert_id", "store", "kind", "window_start_s", "payload", "raised_at", "acked_by", "acked_at")
    return [{**dict(zip(cols, r, strict=True)), "payload": json.loads(r[4])} for r in rows]


def alert_store(conn: Connection, alert_id: str) -> str | None:
    rows = conn.query("SELECT store FROM alerts WHERE alert_id = ?", (alert_id,))
    return str(rows[0][0]) if rows else None
