"""The daily fit, run as its own process: `python -m agent.forecast.fit --db PATH --zone NAME [--now-ns N]`.

It runs apart from the resident agent (agent/forecast/job.py starts it) so numpy's fitting never adds to
the agent's resident memory: it reads the shop's own raw tables, brings `forecast_history` up to
yesterday, fits every series (footfall per hour, each category's sales per day) for today and the six
days after, and writes the run in one transaction. Nothing here is published. Exit 0 with one JSON
line on stdout; exit 1 with one line on stderr naming what failed (the agent records it: job.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from agent.forecast.models import Prior, forecast_series, grid_for
from agent.forecast.prior import prior_for
from agent.owner.localtime import LocalZone
from agent.store import Store
from agent.store import forecasts as sql

HORIZON_DAYS = 7


FOOTFALL_DAY = "footfall:day"  # the day's total, fitted as its own series so its interval is a day's


def coop_stream(series: str) -> str:
    """The coop model's stream for one of the shop's series (the secure rounds' stream names)."""
    if series in (sql.FOOTFALL, FOOTFALL_DAY):
        return "footfall/hourly"
    return f"sales/{series.removeprefix(sql.SALES_PREFIX)}/daily"


def _prior(series: str, stream: dict[str, Any], first: dt.date, spd: int, steps: int) -> Prior | None:
    if series != FOOTFALL_DAY:
        return prior_for(stream, first, spd, steps)
    hourly = prior_for(stream, first, 24, steps * 24)  # the day's share: the sum of its hours
    if hourly is None:
        return None
    return Prior(hourly.shape.reshape(-1, 24).sum(axis=1), np.asarray(hourly.unusual.reshape(-1, 24).any(axis=1)))


def _dense(days: dict[str, list[int]], last: dt.date) -> tuple[dt.date, np.ndarray] | None:
    """The series as one array from its first day to `last`; a day the agent missed counts as zeros."""
    if not days:
        return None
    first = dt.date.fromisoformat(min(days))
    width = len(next(iter(days.values())))
    span = (last - first).days + 1
    if span <= 0:
        return None
    out = np.zeros((span, width))
    for day, values in days.items():
        i = (dt.date.fromisoformat(day) - first).days
        if 0 <= i < span:
            out[i] = values
    if span > 8:  # the first day was most likely partial (the agent started mid-day): leave it out
        return first + dt.timedelta(days=1), out[1:].reshape(-1)
    return first, out.reshape(-1)


def fit_series(
    series: str, days: dict[str, list[int]], zone: LocalZone, today: dt.date, coop: dict[str, Any] | None
) -> sql.SeriesResult | None:
    dense = _dense(days, today - dt.timedelta(days=1))
    if dense is None:
        return None
    first, y = dense
    spd = 24 if series == sql.FOOTFALL else 1
    if series.startswith(sql.SALES_PREFIX) and y.any():
        # A category starts with its first sale (a new category is new, not months of zeros).
        lead = int(np.argmax(y > 0))
        first, y = first + dt.timedelta(days=lead), y[lead:]
    if len(y) < spd:
        return None
    horizon = HORIZON_DAYS * spd
    grid = grid_for(first.toordinal(), spd, len(y) + horizon)
    stream = (coop or {}).get("streams", {}).get(coop_stream(series))
    prior = _prior(series, stream, first, spd, len(y) + horizon) if isinstance(stream, dict) else None
    fc = forecast_series(y, grid, horizon, prior)
    values = []
    for i in range(horizon):
        day = today + dt.timedelta(days=i // spd)
        start = dt.datetime.combine(day, dt.time(i % spd if spd == 24 else 0), tzinfo=zone.tz)
        values.append(
            (day.isoformat(), i % spd, zone.ns(start), float(fc.point[i]), float(fc.lo80[i]), float(fc.hi80[i]))
        )
    holdout = {k: round(v, 4) for k, v in fc.holdout_mae.items()}
    return sql.SeriesResult(series, fc.model, fc.coop_weight, len(y) // spd, holdout, values)


def run(db: Path, zone_name: str, now_ns: int) -> dict[str, Any]:
    """One whole refresh; returns what it did (the JSON line)."""
    started = time.monotonic()
    zone = LocalZone(zone_name)
    today = zone.at(now_ns).date()
    store = Store(db, check_integrity=False)  # the resident agent checked it at its start
    try:
        with store.transaction() as conn:
            written = sql.refresh_history(conn, zone, today - dt.timedelta(days=1))
        conn = store.conn()
        coop = sql.coop_model(conn)
        results = []
        kept = sql.history(conn)
        if sql.FOOTFALL in kept:
            kept[FOOTFALL_DAY] = {day: [sum(v)] for day, v in kept[sql.FOOTFALL].items()}
        for series, days in sorted(kept.items()):
            result = fit_series(series, days, zone, today, coop)
            if result is not None:
                results.append(result)
        status, reason = ("ok", "") if results else ("no_history", "no whole day of the shop's own data yet")
        with store.transaction() as conn:
            run_id = sql.save_run(
                conn, now_ns, zone.name, today.isoformat(), results, time.monotonic() - started, status, reason
            )
    finally:
        store.close()
    return {
        "run_id": run_id,
        "status": status,
        "history_days_written": written,
        "series": {r.series: r.model for r in results},
        "seconds": round(time.monotonic() - started, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.forecast.fit", description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, type=Path)
    parser.add_argument("--zone", default="", help="the shop's zone (empty: the system's)")
    parser.add_argument("--now-ns", type=int, default=None, help="the agent clock's wall time (accelerated clocks)")
    args = parser.parse_args(argv)
    try:
        print(json.dumps(run(args.db, args.zone, args.now_ns or time.time_ns())))
    except Exception as exc:  # one line, for the agent's log and health; the traceback would say less to an owner
        print(f"forecast fit failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
