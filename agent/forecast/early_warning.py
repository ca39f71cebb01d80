"""Early warning against the shop's own forecast: "footfall 40 % under forecast since 10:00".

Pure Python on today's exact hourly counts and the stored forecast of the same hours (no numpy: this runs
in the resident agent for `status` and the owner's page). The verdict is on a run of the day's
complete hours, ending with the last one, whose total is off the forecast by at least `min_share` and by
more than `z` standard deviations, where an hour's standard deviation is read off its 80 % interval
(half its width / 1.2816) and hours are taken as independent (so a day-wide shortfall, the case that
matters, stands out sooner rather than later). Of the runs that qualify, the one whose shortfall (or
excess) is the most standard deviations wide names the start: the hour the change began, not the opening
hour. Runs expecting fewer than `min_expected` people say nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z80 = 1.2815515655446004


@dataclass(frozen=True)
class Warning:
    since_hour: int
    until_hour: int  # exclusive: the hour now in progress
    actual: int
    expected: float

    @property
    def share(self) -> float:
        return self.actual / self.expected - 1.0

    def words(self) -> str:
        direction = "under" if self.share < 0 else "over"
        return (
            f"footfall {abs(self.share) * 100:.0f} % {direction} forecast since {self.since_hour:02d}:00"
            f" ({self.actual} people, forecast about {self.expected:.0f})"
        )


def footfall_warning(
    actual: list[int],
    forecast: list[tuple[float, float, float]],
    hour_now: int,
    min_share: float = 0.25,
    z: float = 2.0,
    min_expected: float = 20.0,
) -> Warning | None:
    """The warning for today, or None. `actual` and `forecast` (point, lo80, hi80) are per local hour 0..23;
    hours from `hour_now` on are not complete and are not judged."""
    best: Warning | None = None
    best_z = 0.0
    total_a, total_e, variance = 0, 0.0, 0.0
    for hour in range(min(hour_now, len(actual), len(forecast)) - 1, -1, -1):
        point, lo, hi = forecast[hour]
        total_a += actual[hour]
        total_e += point
        variance += ((hi - lo) / (2 * Z80)) ** 2
        if point < 0.5 and actual[hour] == 0:
            continue  # a closed hour neither starts nor breaks a run
        if total_e < min_expected:
            continue
        off = total_a - total_e
        score = abs(off) / math.sqrt(variance + 1.0)
        if abs(off) >= min_share * total_e and score > z and score > best_z:
            best, best_z = Warning(hour, hour_now, total_a, total_e), score
    return best
