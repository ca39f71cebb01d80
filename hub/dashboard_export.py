"""CSV and JSON exports of what the signed-in role may see, for any date range.

`what=district` is the district benchmark series (every role); `what=shop&store=S` is that shop's own series
beside the band (the admin for any shop, a shop account only for its own); `what=alerts` the alerts this account
may see whose window (or raising time) falls in the range. Rows are those the pages show.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any
from zoneinfo import ZoneInfo

from hub.auth import User
from hub.dashboard_alerts import visible_alerts
from hub.dashboard_series import DISTRICT_COLUMNS, SHOP_COLUMNS, district_series, shop_series
from hub.dashboard_time import TimeRange
from hub.db import Connection
from hub.queries import stores

ALERT_COLUMNS = (
    "alert_id",
    "store",
    "kind",
    "since",
    "observed",
    "baseline",
    "band_low",
    "band_high",
    "raised",
    "acked_by",
    "acked_at",
)


def _window_length(conn: Connection, store: str | None, query: dict[str, str]) -> int | None:
    """The requested window length, else the shop's own, else the length most shops use."""
    if query.get("window_seconds", "").isdigit():
        return int(query["window_seconds"])
    lengths = [
        int(s["window_seconds"])
        for s in stores(conn)
        if s["window_seconds"] is not None and (store is None or s["store"] == store)
    ]
    return max(set(lengths), key=lengths.count) if lengths else None


def export_rows(
    conn: Connection, user: User, query: dict[str, str], rng: TimeRange, tz: ZoneInfo
) -> tuple[str, tuple[str, ...], list[dict[str, Any]]] | None:
    """(file stem, columns, rows), or None when the user may not see it or it does not exist."""
    what, store = query.get("what", "district"), query.get("store")
    if what == "shop":
        if not store or not user.may_see(store):
            return None
        window_s = _window_length(conn, store, query)
        rows = shop_series(conn, store, window_s, rng) if window_s else []
        return f"{store}-footfall", SHOP_COLUMNS, rows
    if what == "alerts":
        rows = []
        for a in visible_alerts(conn, user, tz):
            if rng.start_s <= a["since_s"] < rng.end_s:
                band = a.get("band") or [None, None]
                rows.append({**a, "band_low": band[0], "band_high": band[1]})
        return "alerts", ALERT_COLUMNS, rows
    if what == "district":
        window_s = _window_length(conn, None, query)
        rows = district_series(conn, window_s, rng) if window_s else []
        return "district-footfall", DISTRICT_COLUMNS, rows
    return None


def to_csv(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: "" if row.get(c) is None else row[c] for c in columns})
    return out.getvalue().encode()


def to_json(columns: tuple[str, ...], rows: list[dict[str, Any]], rng: TimeRange) -> bytes:
    body = {
        "range": {
            "first_day": rng.first_day.isoformat(),
            "last_day": rng.last_day.isoformat(),
            "start_s": rng.start_s,
            "end_s": rng.end_s,
            "compare": rng.compare,
        },
        "columns": list(columns),
        "rows": [{c: row.get(c) for c in columns} for row in rows],
    }
    return json.dumps(body, sort_keys=True, allow_nan=False).encode()
