"""The footfall series a page, a chart and an export show for one date range: one row per window.

The same rows feed the SVG charts, the CSV and the JSON export, so what a manager downloads is what they saw.
District rows carry only published benchmarks (windows with at least k_min shops) and the district total over
those same shops; a shop's rows carry only that shop's own released figures beside the district band.
"""

from __future__ import annotations

from typing import Any

from hub.contract import iso
from hub.dashboard_time import TimeRange
from hub.db import Connection
from hub.queries import benchmarks_between, shop_windows

DISTRICT_COLUMNS = (
    "window_start",
    "window_seconds",
    "n_shops",
    "p25",
    "median",
    "p75",
    "district_total",
    "compare_median",
)
SHOP_COLUMNS = (
    "window_start",
    "window_seconds",
    "store",
    "footfall",
    "n_shops",
    "p25",
    "median",
    "p75",
    "compare_footfall",
)


def window_starts(rng: TimeRange, window_s: int, shift_s: int = 0) -> list[int]:
    """Every window start of this length inside the range (windows are aligned to multiples of their length)."""
    start = -(-(rng.start_s - shift_s) // window_s) * window_s
    return list(range(start, rng.end_s - shift_s, window_s))


def district_series(conn: Connection, window_s: int, rng: TimeRange) -> list[dict[str, Any]]:
    """Published benchmarks in the range, with the district total and the median of the compared period."""
    rows = benchmarks_between(conn, window_s, rng.start_s, rng.end_s)
    published = {int(r["window_start_s"]) for r in rows}
    totals: dict[int, int] = {}
    for sw in shop_windows(conn, sorted(published), window_s=window_s):
        totals[sw.window_start_s] = totals.get(sw.window_start_s, 0) + sw.footfall
    shift = rng.compare_shift_s
    earlier: dict[int, float] = {}
    if shift:
        for r in benchmarks_between(conn, window_s, rng.start_s - shift, rng.end_s - shift):
            earlier[int(r["window_start_s"]) + shift] = float(r["median"])
    out = []
    for r in rows:
        start = int(r["window_start_s"])
        out.append(
            {
                "window_start_s": start,
                "window_start": iso(start),
                "window_seconds": int(r["window_seconds"]),
                "n_shops": int(r["n_shops"]),
                "p25": float(r["p25"]),
                "median": float(r["median"]),
                "p75": float(r["p75"]),
                "district_total": totals.get(start),
                "compare_median": earlier.get(start),
            }
        )
    return out


def shop_series(conn: Connection, store: str, window_s: int, rng: TimeRange) -> list[dict[str, Any]]:
    """The shop's own complete windows in the range beside the district band, and its own compared period."""
    own = shop_windows(conn, window_starts(rng, window_s), store=store, window_s=window_s)
    band = {int(b["window_start_s"]): b for b in benchmarks_between(conn, window_s, rng.start_s, rng.end_s)}
    shift = rng.compare_shift_s
    earlier: dict[int, int] = {}
    if shift:
        for sw in shop_windows(conn, window_starts(rng, window_s, shift), store=store, window_s=window_s):
            earlier[sw.window_start_s + shift] = sw.footfall
    out = []
    for sw in own:
        b = band.get(sw.window_start_s)
        out.append(
            {
                "window_start_s": sw.window_start_s,
                "window_start": iso(sw.window_start_s),
                "window_seconds": sw.window_seconds,
                "store": store,
                "footfall": sw.footfall,
                "n_shops": int(b["n_shops"]) if b else None,
                "p25": float(b["p25"]) if b else None,
                "median": float(b["median"]) if b else None,
                "p75": float(b["p75"]) if b else None,
                "compare_footfall": earlier.get(sw.window_start_s),
            }
        )
    return out
