"""Rows of the shape of `secagg_district_totals` from the simulated district's true sums (unit tests of the
model; the bench and the hub test use real secure rounds instead)."""

from __future__ import annotations

import datetime as dt

from devtools.district import District

HOUR_NS = 3600 * 10**9


def true_rows(d: District) -> list[tuple[str, str, int, int, int, float, int]]:
    start = int(dt.datetime.combine(d.start, dt.time(0), tzinfo=dt.UTC).timestamp()) * 10**9
    total = d.district_hourly()
    shops = [sum(s.start_day <= day for s in d.shops) for day in range(d.days)]
    return [
        (f"w{i // 168}", "footfall/hourly", start + i * HOUR_NS, HOUR_NS, int(total[i]), 0.0, shops[i // 24])
        for i in range(len(total))
    ]
