"""District early warning against the coop's forecast: "district footfall 30 % under forecast since 10:00".

Pure function of the newest day's secure district totals and the model built before that day (both from
`secagg_district_totals` only). Each hour's expected mean-shop footfall is level x profile x the date's
recurring effect (a holiday shuts the district: no warning for that); its uncertainty is the secure noise
(noise_variance / shops^2) plus the day's shared factor, which moves every hour of a day together (so its
variance grows with the square of the run's total). The verdict is on the run of hours ending with the
newest one that is at least `min_share` off and more than `z` standard deviations off, the run with the
largest such score naming the start, as on the box (agent/forecast/early_warning.py).
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from collections.abc import Sequence
from typing import Any

TotalsRow = Sequence[Any]


def district_warning(
    day_rows: list[TotalsRow], stream: dict[str, Any], tz: str, min_share: float = 0.25, z: float = 3.0
) -> dict[str, Any] | None:
    """The warning for one local day's hourly totals (rows of that day only), or None."""
    zone = zoneinfo.ZoneInfo(tz)
    profile, level = stream.get("profile") or [], float(stream.get("level") or 0.0)
    if len(profile) != 168 or level <= 0 or not day_rows:
        return None
    day_sd = float(stream.get("day_log_sd") or 0.1)
    hours = []
    for row in sorted(day_rows, key=lambda r: int(r[2])):
        when = dt.datetime.fromtimestamp(int(row[2]) / 1e9, tz=zone)
        shops = max(int(row[6]), 1)
        effect = float(stream.get("calendar_effects", {}).get(f"{when.month:02d}-{when.day:02d}", 1.0))
        expected = level * profile[when.weekday() * 24 + when.hour] * effect
        hours.append((when, float(row[4]) / shops, expected, float(row[5]) / shops**2))
    best: dict[str, Any] | None = None
    best_z = 0.0
    actual = expected = noise = 0.0
    for when, a, e, v in reversed(hours):
        actual, expected, noise = actual + a, expected + e, noise + v
        if expected <= 0:
            continue
        off = actual - expected
        score = abs(off) / math.sqrt(noise + (day_sd * expected) ** 2 + 1e-9)
        if abs(off) >= min_share * expected and score > z and score > best_z:
            share = off / expected
            words = (f"district footfall {abs(share) * 100:.0f} % {'under' if share < 0 else 'over'} forecast"
                     f" since {when:%H}:00 on {when:%a %d %b}")  # fmt: skip
            best, best_z = {
                "kind": "district_footfall_low" if share < 0 else "district_footfall_high",
                "day": when.date().isoformat(), "since": f"{when:%H}:00", "share": round(share, 3),
                "observed_per_shop": round(actual, 2), "forecast_per_shop": round(expected, 2),
                "score": round(score, 2), "z": z, "words": words,
            }, score  # fmt: skip
    return best
