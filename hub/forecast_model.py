"""The coop's forecast model: a pure function of the district totals that secure aggregation released.

Input rows have the shape of the hub table `secagg_district_totals` (round_id, stream, window_start_ns,
window_ns, total, noise_variance, shops): one noisy district sum per window, nothing per shop. Output, per
stream of hourly or daily windows:
- `profile`: the district's mean shop, per step of the week (hour of week, or weekday), scaled to mean 1:
  the median over the last `weeks` weeks of total / shops at that step (a median, so one holiday or market
  day in those weeks does not bend it);
- `recent_effects`: each of the last 35 days' factor against that profile and the level of the weeks around
  it (the day's weather and events, which every shop shared);
- `calendar_effects`: the days of the year (MM-DD) whose factor was far from 1 (|log| > 0.18) on the same
  date a year before: fixed-date holidays and their eves. A shop multiplies its own level by
  profile x effect (agent/forecast/prior.py).
Everything here is post-processing of released values, so it costs no privacy beyond the rounds' own.
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from collections.abc import Iterable, Sequence
from statistics import median
from typing import Any

MODEL_SCHEMA = "shopkeeper.coop-forecast.v1"
HOUR_NS, DAY_NS = 3600 * 10**9, 86400 * 10**9
CALENDAR_THRESHOLD = 0.18
RECENT_DAYS = 35
LEVEL_HALF_WINDOW = 14  # days each side of a day whose median day ratio is that day's level

TotalsRow = Sequence[Any]  # (round_id, stream, window_start_ns, window_ns, total, noise_variance, shops)


def _by_day(rows: list[TotalsRow], zone: dt.tzinfo, spd: int) -> dict[dt.date, list[float | None]]:
    """Per local date, the district mean per shop of each step of the day (None where no total was released)."""
    days: dict[dt.date, list[float | None]] = {}
    for row in rows:
        shops = int(row[6])
        if shops <= 0:
            continue
        when = dt.datetime.fromtimestamp(int(row[2]) / 1e9, tz=zone)
        step = when.hour if spd == 24 else 0
        days.setdefault(when.date(), [None] * spd)[step] = float(row[4]) / shops
    return days


def _stream_model(rows: list[TotalsRow], zone: dt.tzinfo, spd: int, weeks: int) -> dict[str, Any] | None:
    days = _by_day(rows, zone, spd)
    full = sorted(d for d, v in days.items() if sum(x is not None for x in v) >= max(1, spd - 2))
    if len(full) < 7:
        return None
    last = full[-1]
    recent = [d for d in full if (last - d).days < 7 * weeks]
    cells: dict[tuple[int, int], list[float]] = {}
    for d in recent:
        for step, value in enumerate(days[d]):
            if value is not None:
                cells.setdefault((d.weekday(), step), []).append(value)
    # Noise can make a closed hour's sum negative; a shape is never below zero.
    profile = [max(median(cells[(w, s)]), 0.0) if (w, s) in cells else 0.0 for w in range(7) for s in range(spd)]
    mean = sum(profile) / len(profile)
    if mean <= 0:
        return None
    profile = [p / mean for p in profile]
    day_mass = [sum(profile[w * spd : (w + 1) * spd]) for w in range(7)]
    ratio = {
        d: sum(x for x in days[d] if x is not None) / day_mass[d.weekday()] for d in full if day_mass[d.weekday()] > 0
    }
    effects: dict[dt.date, float] = {}
    for d, r in ratio.items():
        around = [ratio[e] for e in ratio if abs((e - d).days) <= LEVEL_HALF_WINDOW]
        level = median(around)
        if level > 0:
            effects[d] = max(r, 0.0) / level
    recent_ratios = [r for d, r in ratio.items() if (last - d).days < 28]
    logs = [math.log(e) for d, e in effects.items() if (last - d).days < 56 and 0.67 < e < 1.5]
    calendar: dict[str, list[float]] = {}
    for d, e in effects.items():
        if (last - d).days >= 300:  # a year or more back: what recurs on that date
            calendar.setdefault(f"{d.month:02d}-{d.day:02d}", []).append(math.log(max(e, 0.02)))
    recurring = {k: round(math.exp(sum(v) / len(v)), 3) for k, v in sorted(calendar.items())}
    return {
        "steps_per_day": spd,
        "profile": [round(p, 5) for p in profile],
        "recent_effects": {
            d.isoformat(): round(e, 3) for d, e in sorted(effects.items()) if (last - d).days < RECENT_DAYS
        },
        "calendar_effects": {k: v for k, v in recurring.items() if abs(math.log(v)) > CALENDAR_THRESHOLD},
        # The mean shop's level (people per unit of profile) over the last four weeks, and how much a usual
        # day's factor varies (log sd): what a district early warning compares a day with.
        "level": round(median(recent_ratios), 4) if recent_ratios else 0.0,
        "day_log_sd": round(_sd(logs), 4),
        "first_day": full[0].isoformat(),
        "last_day": last.isoformat(),
        "weeks": len(recent) // 7,
        "shops_median": int(median(int(r[6]) for r in rows)),
        "noise_sd_per_shop_max": round(max(math.sqrt(max(float(r[5]), 0.0)) / max(int(r[6]), 1) for r in rows), 4),
        "rounds": sorted({str(r[0]) for r in rows})[-50:],
    }


def _sd(values: list[float]) -> float:
    if len(values) < 2:
        return 0.1
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def district_model(rows: Iterable[TotalsRow], tz: str = "UTC", weeks: int = 8) -> dict[str, Any]:
    """The coop's model from released district totals only (see the module docstring); streams whose windows
    are neither an hour nor a day, or with under a week of totals, are left out (and named in `skipped`)."""
    zone = zoneinfo.ZoneInfo(tz)
    per_stream: dict[str, dict[int, TotalsRow]] = {}
    for row in rows:
        # A window enters at most one round (the shops' window ledgers); should two rows still name one
        # window, the later round's total is kept, deterministically.
        kept = per_stream.setdefault(str(row[1]), {})
        start = int(row[2])
        if start not in kept or str(row[0]) > str(kept[start][0]):
            kept[start] = row
    streams: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for stream, windows in sorted(per_stream.items()):
        lengths = {int(r[3]) for r in windows.values()}
        if lengths not in ({HOUR_NS}, {DAY_NS}):
            skipped[stream] = "windows are not all hourly or all daily"
            continue
        model = _stream_model(list(windows.values()), zone, 24 if lengths == {HOUR_NS} else 1, weeks)
        if model is None:
            skipped[stream] = "under a week of whole days of totals"
        else:
            streams[stream] = model
    return {"schema": MODEL_SCHEMA, "timezone": tz, "streams": streams, "skipped": skipped}
