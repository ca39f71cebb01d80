"""The district page's secure totals: what released secure-aggregation rounds summed (secagg_district_totals),
with the band their noise spans. Only sums over at least a round's threshold of shops exist there, so
showing them reveals nothing about any one shop."""

from __future__ import annotations

import math
from zoneinfo import ZoneInfo

from hub.charts import band_chart
from hub.dashboard_time import TimeRange, label
from hub.db import Connection

NS = 1_000_000_000


def secagg_section(conn: Connection, rng: TimeRange, tz: ZoneInfo) -> str:
    """One chart per (stream, field, window length) with totals in the range; "" when there is none."""
    rows = conn.query(
        "SELECT stream, field, window_ns, window_start_ns, SUM(total), SUM(noise_variance), MIN(shops)"
        " FROM secagg_district_totals WHERE window_start_ns >= ? AND window_start_ns < ?"
        " GROUP BY stream, field, window_ns, window_start_ns ORDER BY stream, field, window_ns, window_start_ns",
        (rng.start_s * NS, rng.end_s * NS),
    )
    if not rows:
        return ""
    series: dict[tuple[str, str, int], list[tuple[int, float, float, int]]] = {}
    for stream, field, window_ns, start_ns, total, variance, shops in rows:
        series.setdefault((str(stream), str(field), int(window_ns)), []).append(
            (int(start_ns) // NS, float(total), float(variance), int(shops))
        )
    cards = []
    for (stream, field, window_ns), points in series.items():
        window_s = window_ns // NS
        labels = [label(s, tz, window_s, rng.end_s - rng.start_s) for s, _t, _v, _n in points]
        # The band is the total +- 2 noise standard deviations (about 95 % of the noise the sum carries).
        low = [t - 2 * math.sqrt(v) for _s, t, v, _n in points]
        high = [t + 2 * math.sqrt(v) for _s, t, v, _n in points]
        fewest = min(n for *_rest, n in points)
        chart = band_chart(
            f"Secure district total: {stream} {field} per {window_s} s window (at least {fewest} shops)",
            labels,
            low,
            [None] * len(points),
            high,
            own=[t for _s, t, _v, _n in points],
            own_label="district total (noise added once)",
        )
        cards.append(f'<div class="card">{chart}</div>')
    return (
        '<h2 id="secure-totals">Secure district totals</h2><p>Sums from secure-aggregation rounds: the hub saw only'
        " these totals, never a shop's own figures, and the noise was added once for the district (the band is"
        " two noise standard deviations either side).</p>" + "".join(cards)
    )
