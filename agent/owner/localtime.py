"""Times as the owner reads them: in the box's own zone, named, with days and "2 minutes ago"."""

from __future__ import annotations

import datetime as dt
import os
import zoneinfo
from pathlib import Path

NS_PER_S = 1_000_000_000
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class LocalZone:
    """The zone figures are shown in, and its name ("Europe/Berlin", or the abbreviation when unnamed)."""

    def __init__(self, name: str = "") -> None:
        self.tz: dt.tzinfo
        key = name or _system_zone_name()
        if key:
            try:
                self.tz, self.name = zoneinfo.ZoneInfo(key), key
                return
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                pass
        local = dt.datetime.now().astimezone().tzinfo
        self.tz = local or dt.UTC
        self.name = dt.datetime.now(self.tz).tzname() or "UTC"

    def at(self, ns: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(ns / NS_PER_S, tz=self.tz)

    def ns(self, when: dt.datetime) -> int:
        return int(when.timestamp()) * NS_PER_S

    def day_start(self, ns: int, days_back: int = 0) -> dt.datetime:
        """Local midnight of the day holding `ns`, `days_back` days earlier (DST-safe)."""
        day = self.at(ns).date() - dt.timedelta(days=days_back)
        return dt.datetime.combine(day, dt.time(0), tzinfo=self.tz)

    def week_start(self, ns: int) -> dt.datetime:
        """Local midnight of the Monday of the week holding `ns`."""
        return self.day_start(ns, self.at(ns).weekday())

    def clock(self, ns: int) -> str:
        """`Tuesday 17 Nov 10:05` (the zone is named once per page or report, not on every line)."""
        when = self.at(ns)
        return f"{DAYS[when.weekday()]} {when.day} {when:%b %H:%M}"

    def span(self, start_ns: int, end_ns: int) -> str:
        """`Tuesday 17 Nov 10:00–11:00`, or with both days when the span crosses midnight."""
        start, end = self.at(start_ns), self.at(end_ns)
        if end - start <= dt.timedelta(days=1) and (start.date() == end.date() or end.time() == dt.time(0)):
            return f"{DAYS[start.weekday()]} {start.day} {start:%b %H:%M}–{end:%H:%M}"
        return f"{self.clock(start_ns)} – {self.clock(end_ns)}"


def _system_zone_name() -> str:
    """The box's zone name from TZ, /etc/timezone or the /etc/localtime link; "" when none is found."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz:
        return tz
    try:
        return Path("/etc/timezone").read_text().strip()
    except OSError:
        pass
    link = Path("/etc/localtime")
    if link.is_symlink():
        target = str(link.resolve())
        if "zoneinfo/" in target:
            return target.split("zoneinfo/", 1)[1]
    return ""


def ago(now_ns: int, then_ns: int | None) -> str:
    """`2 minutes ago`, `just now`, `3 hours ago`; "never" for no time."""
    if then_ns is None:
        return "never"
    seconds = (now_ns - then_ns) // NS_PER_S
    if seconds < 0:
        return "in the future (the clock moved back)"
    if seconds < 45:
        return "just now"
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size * 0.75 or unit == "minute":
            n = max(1, round(seconds / size))
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


def money(cents: int, currency: str = "") -> str:
    """1234 -> `12.34 EUR` (exact: integer cents, no float)."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole:,}.{part:02d}{' ' + currency if currency else ''}"
