"""Read queries shared by the periodic tasks, the dashboard and the JSON API (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Any

from hub.db import Connection

FOOTFALL_STREAM = "footfall/hourly"  # per door; a shop's footfall is the sum over its doors
FOOTFALL_TOTAL_STREAM = "footfall-total/hourly"  # the whole store in one value, preferred when present
FOOTFALL_STREAMS = (FOOTFALL_STREAM, FOOTFALL_TOTAL_STREAM)
SALES_COUNT_STREAM = "sales-count/hourly"  # t2: baskets per category, plus category "all" = number of baskets
SALES_REVENUE_STREAM = "sales-revenue/hourly"  # t2: revenue in cents per category, including "other"
SALES_STREAMS = (SALES_COUNT_STREAM, SALES_REVENUE_STREAM)
ALL_BASKETS = "all"
CHUNK = 400  # placeholders per IN (...) list, well under SQLite's variable limit


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


def doors_per_store(conn: Connection) -> dict[str, int]:
    """How many doors each shop has ever reported: a per-door window counts only when all of them are in."""
    rows = conn.query(
        "SELECT store, COUNT(DISTINCT item) FROM summaries WHERE stream = ? GROUP BY store", (FOOTFALL_STREAM,)
    )
    return {str(r[0]): int(r[1]) for r in rows}


def shop_windows(conn: Connection, windows: list[int] | None = None, store: str | None = None) -> list[ShopWindow]:
    """Complete shop-windows, optionally limited to some windows or one store.

    A window counts for a shop when its store-total value is released (not suppressed), or else when
    every door of the shop has a released, unsuppressed value.
    """
    base = (
        "SELECT store, window_start_s, stream, MIN(window_seconds), SUM(entries), COUNT(entries),"
        " SUM(noise_variance) FROM summaries WHERE stream IN (?, ?)"
    )
    params: list[Any] = list(FOOTFALL_STREAMS)
    if store is not None:
        base += " AND store = ?"
        params.append(store)
    group = " GROUP BY store, window_start_s, stream"
    rows: list[tuple[Any, ...]] = []
    if windows is None:
        rows = conn.query(base + group, params)
    else:
        for chunk in _chunks(sorted(set(windows))):
            marks = ", ".join("?" * len(chunk))
            rows += conn.query(base + f" AND window_start_s IN ({marks})" + group, params + chunk)
    doors = doors_per_store(conn)
    chosen: dict[tuple[str, int], ShopWindow] = {}
    for shop, start, stream, seconds, total, n, variance in rows:
        key = (str(shop), int(start))
        complete = int(n) >= 1 if stream == FOOTFALL_TOTAL_STREAM else int(n) >= doors.get(key[0], 1)
        if not complete or (key in chosen and stream != FOOTFALL_TOTAL_STREAM):
            continue
        chosen[key] = ShopWindow(key[0], key[1], int(seconds), int(total), int(n), float(variance or 0.0))
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


def categories_per_store(conn: Connection) -> dict[str, int]:
    """How many revenue categories each shop has ever reported: a window counts only when all of them are in."""
    rows = conn.query(
        "SELECT store, COUNT(DISTINCT item) FROM summaries WHERE stream = ? GROUP BY store", (SALES_REVENUE_STREAM,)
    )
    return {str(r[0]): int(r[1]) for r in rows}


def shop_sales(conn: Connection, windows: list[int] | None = None, store: str | None = None) -> list[ShopSales]:
    """Shops' sales per window (optionally some windows or one store), from the t2 sales streams."""
    base = (
        "SELECT store, window_start_s, stream, item, window_seconds, amount FROM summaries WHERE stream IN (?, ?)"
        " AND (stream = ? OR item = ?)"
    )
    params: list[Any] = [*SALES_STREAMS, SALES_REVENUE_STREAM, ALL_BASKETS]
    if store is not None:
        base += " AND store = ?"
        params.append(store)
    rows: list[tuple[Any, ...]] = []
    if windows is None:
        rows = conn.query(base, params)
    else:
        for chunk in _chunks(sorted(set(windows))):
            marks = ", ".join("?" * len(chunk))
            rows += conn.query(base + f" AND window_start_s IN ({marks})", params + chunk)
    expected = categories_per_store(conn)
    revenue: dict[tuple[str, int], dict[str, int | None]] = {}
    baskets: dict[tuple[str, int], int | None] = {}
    seconds: dict[tuple[str, int], int] = {}
    for shop, start, stream, item, window_seconds, amount in rows:
        key = (str(shop), int(start))
        seconds[key] = int(window_seconds)
        value = None if amount is None else int(amount)
        if stream == SALES_REVENUE_STREAM:
            revenue.setdefault(key, {})[str(item)] = value
        else:
            baskets[key] = value
    out = []
    for key in sorted(seconds):
        cats = revenue.get(key, {})
        complete = bool(cats) and len(cats) >= expected.get(key[0], 1) and all(v is not None for v in cats.values())
        out.append(ShopSales(key[0], key[1], seconds[key],
                             {c: int(v or 0) for c, v in cats.items()} if complete else None, baskets.get(key)))
    return out


def sales_touched_since(conn: Connection, since: float) -> list[int]:
    """Windows that received POS sales summaries at or after `since` (hub wall time)."""
    return [int(r[0]) for r in conn.query(
        "SELECT DISTINCT window_start_s FROM summaries WHERE received_at >= ? AND stream IN (?, ?)",
        (since, *SALES_STREAMS))]


def touched_since(conn: Connection, since: float) -> tuple[list[int], list[str]]:
    """Footfall windows and stores that received summaries at or after `since` (hub wall time)."""
    windows = [int(r[0]) for r in conn.query(
        "SELECT DISTINCT window_start_s FROM summaries WHERE received_at >= ? AND stream IN (?, ?)",
        (since, *FOOTFALL_STREAMS))]
    stores = [str(r[0]) for r in conn.query("SELECT DISTINCT store FROM summaries WHERE received_at >= ?", (since,))]
    return windows, stores


def stores(conn: Connection) -> list[dict[str, Any]]:
    cols = ("store", "state", "connection", "status_at", "agent", "first_seen_at", "last_seen_at",
            "last_summary_at", "last_window_s", "window_seconds")
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


def latest_benchmark_payload(conn: Connection, metric: str, window_start_s: int | None = None) -> dict[str, Any] | None:
    """The published payload of one metric: for one window, or the newest window."""
    if window_start_s is None:
        rows = conn.query("SELECT payload FROM benchmarks WHERE metric = ? ORDER BY window_start_s DESC LIMIT 1",
                          (metric,))
    else:
        rows = conn.query("SELECT payload FROM benchmarks WHERE metric = ? AND window_start_s = ?",
                          (metric, window_start_s))
    return json.loads(rows[0][0]) if rows else None


def benchmarks(conn: Connection, metric: str = "footfall", limit: int = 24 * 7 * 8) -> list[dict[str, Any]]:
    """The latest `limit` district benchmarks, oldest first."""
    rows = conn.query(
        "SELECT window_start_s, window_seconds, n_shops, p25, median, p75 FROM benchmarks WHERE metric = ?"
        " ORDER BY window_start_s DESC LIMIT ?",
        (metric, limit),
    )
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
    row = conn.query("SELECT MAX(window_start_s) FROM summaries")
    return int(row[0][0]) if row and row[0][0] is not None else None


def shop_streams(conn: Connection, store: str, limit: int = 200) -> list[dict[str, Any]]:
    """One shop's own latest released values on every stream and tier (for its own page only)."""
    rows = conn.query(
        "SELECT stream, tier, item, window_start, entries, exits, amount, epsilon, seq FROM summaries"
        " WHERE store = ? ORDER BY window_start_s DESC, stream, item LIMIT ?",
        (store, limit),
    )
    cols = ("stream", "tier", "item", "window_start", "entries", "exits", "amount", "epsilon", "seq")
    return [dict(zip(cols, r, strict=True)) for r in rows]
