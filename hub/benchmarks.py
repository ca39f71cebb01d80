"""District benchmarks: post-processing of released noisy values only, so no new privacy cost.

Per window length and window (shops are compared only with shops on the same length), each shop's
footfall is its released store-total entries (footfall-total), or else the sum over its doors of the
released per-door entries, counted only when every door is in. The district quartiles (p25, median,
p75; linear interpolation between order statistics, "type 7") are computed only when at least `k_min`
shops contributed, and published retained on `coop/v1/<coop>/_hub/t1/benchmarks/footfall/<window start>`
(hourly windows) or `.../benchmarks/footfall/<window name>/<window start>` (agent/contract/topics.py).

From the t2 POS streams, per window: each shop's category sales shares (revenue per category, negatives
clamped to 0, over the clamped total) and their district quartiles per category in `categories` (metric
`sales-share`), and the district quartiles of the average basket value (total revenue / `all` baskets,
metric `basket-value`). Both need k_min shops, and both are stored for the coop admin only: they are
quartiles of tier-2 values, so they are never published to members (with few shops they ARE shops' values).
Members get only their own band, on their private topic (hub/sales_position.py).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from agent.contract import FOOTFALL_STREAMS, SALES_REVENUE, SALES_STREAMS, StreamSpec
from hub.contract import benchmark_topic, iso, parse_iso, published_json
from hub.db import Connection
from hub.quantiles import quantile
from hub.queries import shop_sales, shop_windows
from hub.sales_position import position_messages, positions

__all__ = ["quantile", "refresh_benchmarks", "refresh_sales_benchmarks", "weekday_hour_profile"]
BENCHMARK_SCHEMA = "shopkeeper.hub-benchmark.v1"
FOOTFALL_UNIT = "entries per window, summed over a shop's doors (released noisy values)"
SALES_SHARE = "sales-share"
SALES_SHARE_UNIT = (
    "categories: share of a shop's revenue per category (released noisy revenue, negatives clamped to 0);"
    " p25/median/p75: share of each shop's largest category"
)
BASKET_VALUE = "basket-value"
BASKET_VALUE_UNIT = "average basket value in cents: a shop's total revenue / its basket count (`all`)"


def _window(window_start_s: int, window_seconds: int) -> dict[str, Any]:
    return {"start": iso(window_start_s), "end": iso(window_start_s + window_seconds), "seconds": window_seconds}


PRIVACY = {"post_processing": True, "source": "released noisy values only; no additional epsilon"}


def benchmark_payload(
    coop: str,
    window_start_s: int,
    window_seconds: int,
    footfall: Sequence[float],
    k_min: int,
    metric: str = "footfall",
    streams: Sequence[StreamSpec] = FOOTFALL_STREAMS,
    unit: str = FOOTFALL_UNIT,
) -> dict[str, Any] | None:
    """The published benchmark for one window, or None when fewer than k_min shops contributed."""
    if len(footfall) < k_min:
        return None
    values = sorted(footfall)
    return {
        "schema": BENCHMARK_SCHEMA,
        "coop": coop,
        "metric": metric,
        "streams": [spec.stream(window_seconds) for spec in streams],
        "unit": unit,
        "window": _window(window_start_s, window_seconds),
        "k_min": k_min,
        "n_shops": len(values),
        "p25": quantile(values, 0.25),
        "median": quantile(values, 0.5),
        "p75": quantile(values, 0.75),
        "privacy": PRIVACY,
    }


def sales_share_payload(
    coop: str, window_start_s: int, window_seconds: int, shares: Sequence[dict[str, float]], k_min: int
) -> dict[str, Any] | None:
    """District category sales shares for one window, or None when fewer than k_min shops contributed.

    `shares` holds one dict per shop (category -> share of that shop's clamped revenue). A category is
    published only when at least k_min shops report it; the top-level quartiles are those of each shop's
    largest share (how concentrated its sales are).
    """
    shares = [s for s in shares if s]
    if len(shares) < k_min:
        return None
    per_category: dict[str, list[float]] = defaultdict(list)
    for shop in shares:
        for category, share in shop.items():
            per_category[category].append(share)
    categories = {
        category: {
            "n_shops": len(values),
            "p25": quantile(sorted(values), 0.25),
            "median": quantile(sorted(values), 0.5),
            "p75": quantile(sorted(values), 0.75),
        }
        for category, values in sorted(per_category.items())
        if len(values) >= k_min
    }
    payload = benchmark_payload(
        coop,
        window_start_s,
        window_seconds,
        [max(s.values()) for s in shares],
        k_min,
        metric=SALES_SHARE,
        streams=[SALES_REVENUE],
        unit=SALES_SHARE_UNIT,
    )
    if payload is None:  # not reached: len(shares) >= k_min
        return None
    payload["categories"] = categories
    return payload


def _upsert(conn: Connection, payload: dict[str, Any], window_start_s: int) -> str | None:
    """Store one benchmark; returns its JSON text when new or changed, None when unchanged."""
    text = published_json(payload)
    metric, seconds = payload["metric"], payload["window"]["seconds"]
    with conn.transaction():
        old = conn.query(
            "SELECT payload FROM benchmarks WHERE metric = ? AND window_seconds = ? AND window_start_s = ?",
            (metric, seconds, window_start_s),
        )
        if old and old[0][0] == text:
            return None
        conn.execute(
            "INSERT INTO benchmarks (metric, window_start_s, window_seconds, n_shops, p25, median, p75, payload,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (metric, window_seconds, window_start_s)"
            " DO UPDATE SET n_shops = excluded.n_shops,"
            " p25 = excluded.p25, median = excluded.median, p75 = excluded.p75, payload = excluded.payload,"
            " updated_at = excluded.updated_at",
            (
                metric,
                window_start_s,
                seconds,
                payload["n_shops"],
                payload["p25"],
                payload["median"],
                payload["p75"],
                text,
                time.time(),
            ),
        )
    return text


def _published(conn: Connection, coop: str, payload: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Store a benchmark; (topic, payload) when it is new or changed, else nothing."""
    if payload is None:
        return []
    window = payload["window"]
    text = _upsert(conn, payload, parse_iso(window["start"]))
    if text is None:
        return []
    return [(benchmark_topic(coop, payload["metric"], window["seconds"], window["start"]), text)]


def refresh_benchmarks(conn: Connection, coop: str, k_min: int, windows: list[int]) -> list[tuple[str, str]]:
    """Recompute the windows starting at `windows`, for every window length; returns (topic, payload) of every
    benchmark that is new or changed."""
    per_window: dict[tuple[int, int], list[int]] = defaultdict(list)
    for sw in shop_windows(conn, windows):
        per_window[(sw.window_seconds, sw.window_start_s)].append(sw.footfall)
    changed: list[tuple[str, str]] = []
    for seconds, start in sorted(per_window):
        changed += _published(conn, coop, benchmark_payload(coop, start, seconds, per_window[(seconds, start)], k_min))
    return changed


def refresh_sales_benchmarks(conn: Connection, coop: str, k_min: int, windows: list[int]) -> list[tuple[str, str]]:
    """Category sales shares and average basket value for the given windows (t2 sales streams, >= k_min shops),
    stored for the admin; returns (private topic, payload) of each shop's position in the newest changed window
    of each window length (retained: one per store), never a district figure (hub/sales_position.py)."""
    shares: dict[tuple[int, int], dict[str, dict[str, float]]] = defaultdict(dict)
    basket_values: dict[tuple[int, int], dict[str, float]] = defaultdict(dict)
    seen: set[tuple[int, int]] = set()
    for sales in shop_sales(conn, windows):
        key = (sales.window_seconds, sales.window_start_s)
        seen.add(key)
        share = sales.shares()
        if share:
            shares[key][sales.store] = share
        value = sales.basket_value()
        if value is not None:
            basket_values[key][sales.store] = value
    changed: dict[int, int] = {}  # window length -> newest changed window start
    for seconds, start in sorted(seen):
        share_doc = sales_share_payload(coop, start, seconds, list(shares[(seconds, start)].values()), k_min)
        value_doc = benchmark_payload(
            coop,
            start,
            seconds,
            list(basket_values[(seconds, start)].values()),
            k_min,
            metric=BASKET_VALUE,
            streams=SALES_STREAMS,
            unit=BASKET_VALUE_UNIT,
        )
        updated = [_upsert(conn, doc, start) for doc in (share_doc, value_doc) if doc is not None]
        if any(text is not None for text in updated):
            changed[seconds] = start
    messages: list[tuple[str, str]] = []
    for seconds, start in sorted(changed.items()):
        if start < _newest_sales_window(conn, seconds):
            continue  # a late old window: the retained position stays that of the newest window
        found = positions(coop, start, seconds, shares[(seconds, start)], basket_values[(seconds, start)], k_min)
        messages += [(topic, published_json(doc)) for topic, doc in position_messages(found, coop)]
    return messages


def _newest_sales_window(conn: Connection, window_s: int) -> int:
    rows = conn.query(
        "SELECT MAX(window_start_s) FROM benchmarks WHERE metric IN (?, ?) AND window_seconds = ?",
        (SALES_SHARE, BASKET_VALUE, window_s),
    )
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


def weekday_hour_profile(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """District profile over the week: per (weekday, hour), the median across weeks of each quartile."""
    cells: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        start = int(row["window_start_s"])
        weekday = (start // 86400 + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        cells[(weekday, start % 86400 // 3600)].append(row)
    out = []
    for (weekday, hour), items in sorted(cells.items()):
        out.append(
            {
                "weekday": weekday,
                "hour": hour,
                "weeks": len(items),
                **{q: quantile(sorted(float(i[q]) for i in items), 0.5) for q in ("p25", "median", "p75")},
            }
        )
    return out
