"""Date ranges, comparisons and readable times for the dashboard, in the coop's time zone.

A range is a half-open interval [start, end) of Unix seconds chosen by `range=day|week|month|custom` (with
`date=YYYY-MM-DD` for the last day shown, or `from`/`to` for custom), in the coop's local calendar so that
"a day" is the shop's day, DST included. Comparisons shift the same range back one week, or 52 weeks (364
days, so Mondays line up with Mondays) for year over year.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from zoneinfo import ZoneInfo

RANGES = {"day": 1, "week": 7, "month": 30}
COMPARISONS = {"none": 0, "week": 7 * 86400, "year": 364 * 86400}
MAX_CUSTOM_DAYS = 400


@dataclasses.dataclass(frozen=True)
class TimeRange:
    kind: str  # day, week, month or custom
    first_day: dt.date  # inclusive, in the coop's time zone
    last_day: dt.date  # inclusive
    start_s: int
    end_s: int  # exclusive
    compare: str  # none, week or year

    @property
    def compare_shift_s(self) -> int:
        return COMPARISONS[self.compare]

    def query(self, **extra: str) -> str:
        """The query string that selects this range again (for links and the export buttons)."""
        from urllib.parse import urlencode

        params = {"range": self.kind, "compare": self.compare}
        if self.kind == "custom":
            params |= {"from": self.first_day.isoformat(), "to": self.last_day.isoformat()}
        else:
            params["date"] = self.last_day.isoformat()
        return urlencode(params | extra)


def _midnight(day: dt.date, tz: ZoneInfo) -> int:
    return int(dt.datetime.combine(day, dt.time(), tzinfo=tz).timestamp())


def _date(text: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        return None


def parse_range(query: Mapping[str, str], tz: ZoneInfo, newest_s: int | None, default: str = "week") -> TimeRange:
    """The range a page asks for; anything unreadable falls back to the default ending at the newest window."""
    today = dt.datetime.fromtimestamp(newest_s if newest_s is not None else 0, tz=tz).date()
    kind = query.get("range", default)
    compare = query.get("compare", "none")
    if compare not in COMPARISONS:
        compare = "none"
    first, last = _date(query.get("from")), _date(query.get("to"))
    if kind == "custom" and first and last and first <= last and (last - first).days < MAX_CUSTOM_DAYS:
        pass
    else:
        if kind not in RANGES:
            kind = default
        last = _date(query.get("date")) or today
        first = last - dt.timedelta(days=RANGES[kind] - 1)
    return TimeRange(kind, first, last, _midnight(first, tz), _midnight(last + dt.timedelta(days=1), tz), compare)


def label(t_s: int, tz: ZoneInfo, window_s: int, span_s: int) -> str:
    """A window start for an axis: the time of day within one day, else weekday, date and time."""
    t = dt.datetime.fromtimestamp(t_s, tz=tz)
    clock = f"{t:%H:%M}"
    if span_s <= 86400:
        return clock
    midnight = t.hour == 0 and t.minute == 0
    return f"{t:%a %d %b}" if window_s >= 86400 or span_s > 14 * 86400 or midnight else f"{t:%a %d %b} {clock}"


def stamp(t_s: float | None, tz: ZoneInfo) -> str:
    """A full local time with its zone, for tables and alerts: 2025-11-24 09:00 CET."""
    if t_s is None:
        return "-"
    return f"{dt.datetime.fromtimestamp(t_s, tz=tz):%Y-%m-%d %H:%M %Z}"


def money(cents: float | None, currency: str) -> str:
    """Cents as currency units with the currency: 7.89 EUR."""
    return "-" if cents is None else f"{cents / 100:,.2f} {currency}"
