"""District benchmarks: post-processing of released noisy values only, so no new privacy cost.

Per hourly window, each shop's footfall is its released store-total entries (footfall-total), or
else the sum over its doors of the released per-door entries, counted only when every door is in.
The district quartiles (p25, median, p75; linear interpolation between order statistics, "type 7")
are computed only when at least `k_min` shops contributed, and published retained on
`coop/v1/<coop>/_hub/t1/benchmarks/footfall/<window start>`.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from hub.contract import benchmark_topic, iso
from hub.db import Connection
from hub.queries import FOOTFALL_STREAMS, shop_windows

BENCHMARK_SCHEMA = "shopkeeper.hub-benchmark.v1"


def quantile(sorted_values: Sequence[float], p: float) -> float:
    """The p-quantile by linear interpolation between order statistics (numpy's default)."""
    if not sorted_values:
        raise ValueError("quantile of no values")
    pos = (len(sorted_values) - 1) * p
    low = math.floor(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return float(sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low))


def benchmark_payload(
    coop: str, window_start_s: int, window_seconds: int, footfall: Sequence[int], k_min: int
) -> dict[str, Any] | None:
    """The published benchmark for one window, or None when fewer than k_min shops contributed."""
    if len(footfall) < k_min:
        return None
    values = sorted(footfall)
    return {
        "schema": BENCHMARK_SCHEMA,
        "coop": coop,
        "metric": "footfall",
        "streams": list(FOOTFALL_STREAMS),
        "unit": "entries per window, summed over a shop's doors (released noisy values)",
        "window": {
            "start": iso(window_start_s),
            "end": iso(window_start_s + window_seconds),
            "seconds": window_seconds,
        },
        "k_min": k_min,
        "n_shops": len(values),
        "p25": quantile(values, 0.25),
        "median": quantile(values, 0.5),
        "p75": quantile(values, 0.75),
        "privacy": {"post_processing": True, "source": "released noisy values only; no additional epsilon"},
    }


def refresh_benchmarks(conn: Connection, coop: str, k_min: int, windows: list[int]) -> list[tuple[str, str]]:
    """Recompute the given windows; returns (topic, payload) of every benchmark that is new or changed."""
    per_window: dict[int, list[int]] = defaultdict(list)
    seconds: dict[int, int] = {}
    for sw in shop_windows(conn, windows):
        per_window[sw.window_start_s].append(sw.footfall)
        seconds[sw.window_start_s] = sw.window_seconds
    changed: list[tuple[str, str]] = []
    for start in sorted(per_window):
        payload = benchmark_payload(coop, start, seconds[start], per_window[start], k_min)
        if payload is None:
            continue
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        with conn.transaction():
            old = conn.query("SELECT payload FROM benchmarks WHERE metric = 'footfall' AND window_start_s = ?",
                             (start,))
            if old and old[0][0] == text:
                continue
            conn.execute(
                "INSERT INTO benchmarks (metric, window_start_s, window_seconds, n_shops, p25, median, p75, payload,"
                " updated_at) VALUES ('footfall', ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (metric, window_start_s)"
                " DO UPDATE SET window_seconds = excluded.window_seconds, n_shops = excluded.n_shops,"
                " p25 = excluded.p25, median = excluded.median, p75 = excluded.p75, payload = excluded.payload,"
                " updated_at = excluded.updated_at",
                (start, seconds[start], payload["n_shops"], payload["p25"], payload["median"], payload["p75"],
                 text, time.time()),
            )
        changed.append((benchmark_topic(coop, "footfall", payload["window"]["start"]), text))
    return changed


def weekday_hour_profile(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """District profile over the week: per (weekday, hour), the median across weeks of each quartile."""
    cells: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        start = int(row["window_start_s"])
        weekday = (start // 86400 + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        cells[(weekday, start % 86400 // 3600)].append(row)
    out = []
    for (weekday, hour), items in sorted(cells.items()):
        out.append({
            "weekday": weekday,
            "hour": hour,
            "weeks": len(items),
            **{q: quantile(sorted(float(i[q]) for i in items), 0.5) for q in ("p25", "median", "p75")},
        })
    return out
