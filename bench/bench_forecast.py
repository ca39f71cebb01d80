"""Hyperlocal forecasts on the simulated district (devtools/district.py), each figure with its same-run baseline.

Usage: .venv/bin/python bench/bench_forecast.py [--seed N] [--origins K]

The district: 16 shops with two years of history and 8 new shops (four kinds, sizes 6 to 90 people in the
busiest hour), shared weather, fixed-date holidays and market afternoons; seeded. The coop model is built
only from district sums of real secure-aggregation rounds (devtools/district_rounds.py: one round a week,
each shop's distributed noise share, rho 1/32 per window), and only from rounds finished before the origin.

- `forecast.mase_ratio_vs_seasonal_naive`: shops with at least a year of history, next 7 days of hourly
  footfall from K origins in the second year; mean MASE of the box's local forecast (agent/forecast/models.py,
  no coop) over mean MASE of seasonal naive (the baseline: last week again). Goal <= 0.85.
- `forecast.new_shop_gain`: shops with one week of history (each new shop at its first week, and each
  established shop cut to its last week before three origins); pooled MAE of the local-only forecast over
  pooled MAE of the coop-informed one. Goal >= 1.3. The geometric mean of per-shop ratios is reported too.
- `forecast.interval_coverage_80`: share of the open hours of the MASE set inside the 80 % interval. Goal
  0.80 +- 0.05. Baseline: seasonal naive with the textbook interval (+-1.28 times the sd of its in-sample
  errors), `forecast.interval_coverage_80_baseline_naive_normal`.
- footprint: `forecast.resident_added_rss_mb`, what the forecast's modules add to the resident agent's RSS
  (baseline in the same run: `forecast.resident_rss_without_forecast_mb`), and the fit process's own peak
  (`forecast.fit_process_peak_rss_mb`, VmHWM) and time on a year of one shop's hourly counts in SQLite.
Prints ONE flat JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.forecast.models import forecast_series, grid_for, seasonal_naive
from agent.forecast.prior import prior_for
from devtools.district import District, simulate
from devtools.district_rounds import STREAM, secure_totals
from hub.forecast_model import district_model

WEEK = 168
HOUR_NS = 3600 * 10**9


_COOP_CACHE: dict[int, dict | None] = {}


def coop_at(district: District, rows: list[tuple], origin_day: int) -> dict | None:
    """The coop's model as the hub had it at local midnight of `origin_day`: rounds of whole weeks before it."""
    if origin_day in _COOP_CACHE:
        return _COOP_CACHE[origin_day]
    start_ns = rows[0][2] if rows else 0
    cutoff = start_ns + origin_day * 24 * HOUR_NS
    model = district_model([r for r in rows if r[2] < cutoff])
    _COOP_CACHE[origin_day] = model["streams"].get(STREAM)
    return _COOP_CACHE[origin_day]


def mase_and_coverage(district: District, origins: list[int]) -> dict[str, object]:
    ordinal = district.start.toordinal()
    model_mase: list[float] = []
    naive_mase: list[float] = []
    inside = open_hours = naive_inside = 0
    models: dict[str, int] = {}
    for shop in district.shops:
        if shop.start_day:
            continue
        y = district.footfall[shop.shop_id]
        for day in origins:
            n = day * 24
            grid = grid_for(ordinal, 24, n + WEEK)
            fc = forecast_series(y[:n], grid, WEEK)
            truth = y[n : n + WEEK].astype(float)
            hist = y[:n].astype(float)
            naive = seasonal_naive(hist, grid, WEEK)
            scale = float(np.mean(np.abs(hist[WEEK:] - hist[:-WEEK])))
            model_mase.append(float(np.mean(np.abs(fc.point - truth))) / scale)
            naive_mase.append(float(np.mean(np.abs(naive - truth))) / scale)
            models[fc.model] = models.get(fc.model, 0) + 1
            is_open = district.open_hours[shop.shop_id][n : n + WEEK]
            inside += int(((truth >= fc.lo80) & (truth <= fc.hi80))[is_open].sum())
            sd = float(np.std(hist[-52 * WEEK :][WEEK:] - hist[-52 * WEEK :][:-WEEK]))
            naive_in = (truth >= naive - 1.2816 * sd) & (truth <= naive + 1.2816 * sd)
            naive_inside += int(naive_in[is_open].sum())
            open_hours += int(is_open.sum())
    return {
        "forecast.mase_ratio_vs_seasonal_naive": round(float(np.mean(model_mase) / np.mean(naive_mase)), 4),
        "forecast.mase_local": round(float(np.mean(model_mase)), 4),
        "forecast.mase_seasonal_naive": round(float(np.mean(naive_mase)), 4),
        "forecast.mase_forecasts": len(model_mase),
        "forecast.models_chosen": models,
        "forecast.interval_coverage_80": round(inside / open_hours, 4),
        "forecast.interval_coverage_80_baseline_naive_normal": round(naive_inside / open_hours, 4),
        "forecast.interval_open_hours": open_hours,
    }


def new_shop_gain(
    district: District, rows: list[tuple], origins: list[int], history_days: int = 7
) -> dict[str, object]:
    ordinal = district.start.toordinal()
    cases = [(s.shop_id, s.start_day, s.start_day + history_days) for s in district.shops if s.start_day]
    cases += [(s.shop_id, day - history_days, day) for s in district.shops if not s.start_day for day in origins]
    local_err = coop_err = 0.0
    ratios, weights, inside, open_hours = [], [], 0, 0
    for shop_id, first, origin in cases:
        if origin + 7 > district.days:
            continue
        model = coop_at(district, rows, origin)
        y = district.footfall[shop_id][first * 24 : origin * 24]
        n = len(y)
        grid = grid_for(ordinal + first, 24, n + WEEK)
        prior = prior_for(model, district.date(first), 24, n + WEEK) if model else None
        truth = district.footfall[shop_id][origin * 24 : origin * 24 + WEEK].astype(float)
        local = forecast_series(y, grid, WEEK)
        coop = forecast_series(y, grid, WEEK, prior)
        a, b = float(np.mean(np.abs(local.point - truth))), float(np.mean(np.abs(coop.point - truth)))
        local_err, coop_err = local_err + a, coop_err + b
        ratios.append(a / b)
        weights.append(coop.coop_weight if coop.coop_weight is not None else 1.0)
        is_open = district.open_hours[shop_id][origin * 24 : origin * 24 + WEEK]
        inside += int(((truth >= coop.lo80) & (truth <= coop.hi80))[is_open].sum())
        open_hours += int(is_open.sum())
    suffix = "" if history_days == 7 else f"_{history_days}d"
    return {
        f"forecast.new_shop_gain{suffix}": round(local_err / coop_err, 4),
        f"forecast.new_shop_gain_geomean{suffix}": round(math.exp(float(np.mean(np.log(ratios)))), 4),
        f"forecast.new_shop_mae_local_only{suffix}": round(local_err / len(ratios), 4),
        f"forecast.new_shop_mae_coop_informed{suffix}": round(coop_err / len(ratios), 4),
        f"forecast.new_shop_cases{suffix}": len(ratios),
        f"forecast.new_shop_local_weight_mean{suffix}": round(float(np.mean(weights)), 3),
        f"forecast.new_shop_interval_coverage_80{suffix}": round(inside / max(open_hours, 1), 4),
    }


FOOTPRINT_CODE = """
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
# What the resident agent held before forecasts: the store, the owner's figures, the coop messages.
import agent.store, agent.owner.figures, agent.owner.sensors, agent.owner.sent, agent.coop.district
before = rss()
import agent.owner.page, agent.owner.status_words, agent.forecast.job, agent.forecast.words  # with forecasts
print(before, rss())
"""


def footprint(district: District) -> dict[str, object]:
    """What forecasting adds to the resident agent (imports only), and the real fit child on a year of data."""
    import datetime as dt
    import subprocess
    import tempfile

    from agent.store import Store

    repo = str(Path(__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", FOOTPRINT_CODE], capture_output=True, text=True, cwd=repo, check=True)
    before, after = (float(x) for x in out.stdout.split())
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "agent.db"
        store = Store(db)
        start = int(dt.datetime.combine(district.start, dt.time(0), tzinfo=dt.UTC).timestamp()) * 10**9
        y = district.footfall["shop-01"][: 366 * 24]
        with store.transaction() as conn:
            conn.executemany(
                "INSERT INTO events (boot_id, mono_ns, wall_ns, synced, driver, door, entries, exits)"
                " VALUES ('b', 0, ?, 1, 'sim', 'front', ?, 0)",
                [(start + h * HOUR_NS + 60 * 10**9, int(c)) for h, c in enumerate(y) if c],
            )
        store.close()
        now = start + 366 * 24 * HOUR_NS
        # The fit's own entry point, reporting its own peak: VmHWM of its address space (ru_maxrss would carry
        # the parent's peak over the fork and exec on Linux).
        code = (
            "import sys; from agent.forecast.fit import main;"
            f" rc = main(['--db', {str(db)!r}, '--zone', 'UTC', '--now-ns', '{now}']);"
            " print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')][0], file=sys.stderr);"
            " sys.exit(rc)"
        )
        child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo, check=True)
    return {
        "forecast.resident_added_rss_mb": round(after - before, 2),
        "forecast.resident_rss_without_forecast_mb": round(before, 1),
        "forecast.fit_process_one_year_s": json.loads(child.stdout)["seconds"],
        "forecast.fit_process_peak_rss_mb": round(int(child.stderr.split()[-1]) / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--origins", type=int, default=8, help="forecast origins in the second year")
    args = parser.parse_args()
    wall = time.perf_counter()
    district = simulate(seed=args.seed)
    # Origins every five weeks of the second year, on week boundaries (the rounds are weekly).
    origins = [399 + 35 * k for k in range(args.origins) if 399 + 35 * k + 7 <= district.days]
    rounds_wall = time.perf_counter()
    totals = secure_totals(district)
    result: dict[str, object] = {"forecast.secagg_rounds": totals.rounds}
    result["forecast.secagg_rounds_wall_s"] = round(time.perf_counter() - rounds_wall, 1)
    result["forecast.secagg_rho_per_window"] = str(totals.rho_per_window)
    spent = [len(ledger.spent) for ledger in totals.ledgers.values()]
    result["forecast.secagg_windows_spent_per_shop_max"] = max(spent)
    result.update(mase_and_coverage(district, origins))
    result.update(new_shop_gain(district, totals.rows, origins[:3]))
    result.update(new_shop_gain(district, totals.rows, origins[:3], history_days=14))
    result.update(footprint(district))
    result["forecast.wall_s"] = round(time.perf_counter() - wall, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
