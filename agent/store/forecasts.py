"""SQL of the shop's own forecasts: the per-day history, the runs, their values, and the coop's model.

Everything here is local: nothing is published. Each function takes the caller's connection. Counts are
placed in local hours from quarter-hour sums (every zone's offset is a whole number of quarter hours).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agent.owner.localtime import NS_PER_S, LocalZone

QUARTER_NS = 900 * NS_PER_S
FOOTFALL = "footfall"
SALES_PREFIX = "sales:"
KEEP_RUNS = 5
# The history is bounded like every table the agent keeps: the models read at most a year and the same date a
# year before (day-of-year effects), so two years and a margin are kept and older days go (~0.5 MB a year).
KEEP_HISTORY_DAYS = 800


def _day_bounds(zone: LocalZone, first: dt.date, last: dt.date) -> tuple[int, int]:
    lo = dt.datetime.combine(first, dt.time(0), tzinfo=zone.tz)
    hi = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(0), tzinfo=zone.tz)
    return zone.ns(lo), zone.ns(hi)


def earliest_raw_day(conn: sqlite3.Connection, zone: LocalZone, table: str) -> dt.date | None:
    """The local day of the oldest synced raw row still kept in `table` (events or baskets)."""
    row = conn.execute(f"SELECT min(wall_ns) FROM {table} WHERE synced = 1").fetchone()
    return None if row is None or row[0] is None else zone.at(int(row[0])).date()


def _days_to_write(
    conn: sqlite3.Connection, zone: LocalZone, table: str, series_like: str, until: dt.date
) -> list[dt.date]:
    """Whole local days from the oldest raw row of `table` to `until`. Retention drops raw rows oldest first,
    so that oldest day may be partial: it is written only when the history does not hold it yet (the
    agent's first day, itself partial); every older day keeps what was written while its raw rows lasted."""
    first = earliest_raw_day(conn, zone, table)
    if first is None:
        return []
    held = conn.execute(
        "SELECT 1 FROM forecast_history WHERE series LIKE ? AND day = ? LIMIT 1", (series_like, first.isoformat())
    ).fetchone()
    if held:
        first += dt.timedelta(days=1)
    return [first + dt.timedelta(days=i) for i in range((until - first).days + 1)]


def refresh_history(conn: sqlite3.Connection, zone: LocalZone, until: dt.date) -> int:
    """Write the history of every whole local day that raw rows still cover, up to `until` (inclusive):
    footfall from door events, sales from baskets, each from its own oldest raw day. Returns the days written."""
    cells: dict[tuple[str, str, int], int] = {}
    foot_days = _days_to_write(conn, zone, "events", FOOTFALL, until)
    if foot_days:
        cells.update({(FOOTFALL, d.isoformat(), h): 0 for d in foot_days for h in range(24)})
        lo, hi = _day_bounds(zone, foot_days[0], foot_days[-1])
        for quarter, entries in conn.execute(
            "SELECT wall_ns / ?, sum(entries) FROM events WHERE synced = 1 AND wall_ns >= ? AND wall_ns < ?"
            " GROUP BY wall_ns / ?",
            (QUARTER_NS, lo, hi, QUARTER_NS),
        ):
            when = zone.at(int(quarter) * QUARTER_NS)
            key = (FOOTFALL, when.date().isoformat(), when.hour)
            cells[key] = cells.get(key, 0) + int(entries)
    sale_days = _days_to_write(conn, zone, "baskets", SALES_PREFIX + "%", until)
    if sale_days:
        categories = {str(r[0]) for r in conn.execute("SELECT DISTINCT category FROM basket_lines")}
        categories |= {
            str(s)[len(SALES_PREFIX) :]
            for (s,) in conn.execute("SELECT DISTINCT series FROM forecast_history WHERE series LIKE 'sales:%'")
        }
        cells.update({(SALES_PREFIX + c, d.isoformat(), 0): 0 for c in categories for d in sale_days})
        lo, hi = _day_bounds(zone, sale_days[0], sale_days[-1])
        for quarter, category, cents in conn.execute(
            "SELECT b.wall_ns / ?, l.category, sum(l.line_total_cents) FROM basket_lines l JOIN baskets b"
            " ON b.id = l.basket_id WHERE b.synced = 1 AND b.kind = 'sale' AND b.flagged = ''"
            " AND b.wall_ns >= ? AND b.wall_ns < ? GROUP BY b.wall_ns / ?, l.category",
            (QUARTER_NS, lo, hi, QUARTER_NS),
        ):
            key = (SALES_PREFIX + str(category), zone.at(int(quarter) * QUARTER_NS).date().isoformat(), 0)
            cells[key] = cells.get(key, 0) + int(cents)
    conn.executemany(
        "INSERT INTO forecast_history VALUES (?, ?, ?, ?) ON CONFLICT (series, day, step) DO UPDATE SET"
        " value = excluded.value",
        [(s, d, h, v) for (s, d, h), v in cells.items()],
    )
    oldest_kept = (until - dt.timedelta(days=KEEP_HISTORY_DAYS)).isoformat()
    conn.execute("DELETE FROM forecast_history WHERE day < ?", (oldest_kept,))  # ISO dates sort as dates
    return len({d for d in foot_days} | {d for d in sale_days})


def history(conn: sqlite3.Connection) -> dict[str, dict[str, list[int]]]:
    """series -> local day (ISO) -> values of its steps (24 hours, or one day)."""
    out: dict[str, dict[str, list[int]]] = {}
    for series, day, step, value in conn.execute(
        "SELECT series, day, step, value FROM forecast_history ORDER BY series, day, step"
    ):
        steps = out.setdefault(str(series), {}).setdefault(str(day), [0] * (24 if series == FOOTFALL else 1))
        steps[int(step)] = int(value)
    return out


@dataclass(frozen=True)
class SeriesResult:
    """One series of a run: its model and its values, ready to store."""

    series: str
    model: str
    coop_weight: float | None
    history_days: int
    holdout: dict[str, float]
    values: list[tuple[str, int, int, float, float, float]]  # (day, step, start_ns, point, lo80, hi80)


def save_run(
    conn: sqlite3.Connection,
    made_wall_ns: int,
    zone: str,
    first_day: str,
    results: Iterable[SeriesResult],
    fit_seconds: float,
    status: str = "ok",
    reason: str = "",
) -> int:
    """Store one run (call inside a transaction); older runs beyond the last KEEP_RUNS go."""
    cur = conn.execute(
        "INSERT INTO forecast_runs (made_wall_ns, zone, first_day, status, reason, fit_seconds)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (made_wall_ns, zone, first_day, status, reason, fit_seconds),
    )
    run_id = int(cur.lastrowid or 0)
    for r in results:
        conn.execute(
            "INSERT INTO forecast_models VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, r.series, r.model, r.coop_weight, r.history_days, json.dumps(r.holdout, sort_keys=True)),
        )
        conn.executemany(
            "INSERT INTO forecast_values VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [(run_id, r.series, *v) for v in r.values]
        )
    conn.execute(
        "DELETE FROM forecast_runs WHERE id NOT IN (SELECT id FROM forecast_runs ORDER BY id DESC LIMIT ?)",
        (KEEP_RUNS,),
    )
    return run_id


def latest_run(conn: sqlite3.Connection, ok_only: bool = True) -> dict[str, Any] | None:
    """The newest run (the newest successful one by default) with its models and values."""
    row = conn.execute(
        "SELECT id, made_wall_ns, zone, first_day, status, reason, fit_seconds FROM forecast_runs"
        + (" WHERE status = 'ok'" if ok_only else "")
        + " ORDER BY id DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    run: dict[str, Any] = dict(
        zip(("id", "made_wall_ns", "zone", "first_day", "status", "reason", "fit_seconds"), row, strict=True)
    )
    run["series"] = {}
    for series, model, weight, days, holdout in conn.execute(
        "SELECT series, model, coop_weight, history_days, holdout FROM forecast_models WHERE run_id = ?"
        " ORDER BY series",
        (run["id"],),
    ):
        run["series"][series] = {
            "model": model, "coop_weight": weight, "history_days": days, "holdout_mae": json.loads(holdout),
            "values": [],
        }  # fmt: skip
    for series, day, step, start_ns, point, lo, hi in conn.execute(
        "SELECT series, day, step, start_ns, point, lo80, hi80 FROM forecast_values WHERE run_id = ?"
        " ORDER BY series, day, step",
        (run["id"],),
    ):
        run["series"][series]["values"].append(
            {"day": day, "step": step, "start_ns": start_ns, "point": point, "lo80": lo, "hi80": hi}
        )
    return run


def store_coop_model(conn: sqlite3.Connection, payload: str, wall_ns: int) -> None:
    conn.execute(
        "INSERT INTO coop_forecast_model VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET payload = excluded.payload,"
        " received_wall_ns = excluded.received_wall_ns",
        (payload, wall_ns),
    )


def coop_model(conn: sqlite3.Connection) -> dict[str, Any] | None:
    row = conn.execute("SELECT payload FROM coop_forecast_model WHERE id = 1").fetchone()
    return None if row is None else dict(json.loads(row[0]))


def footfall_today(conn: sqlite3.Connection, zone: LocalZone, day: dt.date, until_ns: int) -> list[int]:
    """Exact entries in each local hour of `day` before `until_ns` (for early warnings)."""
    lo, _hi = _day_bounds(zone, day, day)
    hours = [0] * 24
    for quarter, entries in conn.execute(
        "SELECT wall_ns / ?, sum(entries) FROM events WHERE synced = 1 AND wall_ns >= ? AND wall_ns < ?"
        " GROUP BY wall_ns / ?",
        (QUARTER_NS, lo, until_ns, QUARTER_NS),
    ):
        when = zone.at(int(quarter) * QUARTER_NS)
        if when.date() == day:
            hours[when.hour] += int(entries)
    return hours
