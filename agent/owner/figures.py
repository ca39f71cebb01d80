"""The shop's own exact figures, in local hours and days: read from the raw tables, never sent anywhere.

Only readings with a trusted time (`synced = 1`) are placed in an hour; readings still waiting for the
clock are counted apart. Sums are grouped in SQL by quarter hour (every zone's offset is a whole
number of quarter hours) and then placed in local hours here, so a zone like UTC+5:45 is exact too.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import sqlite3
from collections import defaultdict

from agent.owner.localtime import NS_PER_S, LocalZone

QUARTER_NS = 900 * NS_PER_S


@dataclasses.dataclass
class DoorHour:
    door: str
    hour: dt.datetime  # local start of the hour
    entries: int = 0
    exits: int = 0


@dataclasses.dataclass
class CategorySales:
    category: str
    baskets: int = 0  # baskets with at least one line in the category
    items: int = 0
    revenue_cents: int = 0


@dataclasses.dataclass
class Period:
    """One period's exact figures (today, or this week)."""

    start: dt.datetime
    end: dt.datetime
    door_hours: list[DoorHour]
    categories: list[CategorySales]
    baskets: int
    revenue_cents: int
    refunds: int
    refunds_cents: int
    currency: str
    sales_by_hour: dict[dt.datetime, tuple[int, int]]  # local hour -> (baskets, revenue cents)
    waiting_for_clock: int  # readings stored on an unsynchronised clock, not placed yet

    def door_totals(self) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        for row in self.door_hours:
            e, x = out.get(row.door, (0, 0))
            out[row.door] = (e + row.entries, x + row.exits)
        return out

    def occupancy_by_hour(self) -> list[tuple[dt.datetime, int]]:
        """People inside at the end of each hour: entries minus exits since the start (all doors)."""
        net: dict[dt.datetime, int] = defaultdict(int)
        for row in self.door_hours:
            net[row.hour] += row.entries - row.exits
        inside, out = 0, []
        for hour in sorted(net):
            inside += net[hour]
            out.append((hour, inside))
        return out

    def by_day(self, zone: LocalZone) -> list[tuple[dt.date, int, int, int, int]]:
        """(day, entries, exits, baskets, revenue cents) for every day of the period, zeros included."""
        days: dict[dt.date, list[int]] = {}
        day = self.start.date()
        while day < self.end.date() or (day == self.end.date() and self.end.time() != dt.time(0)):
            days[day] = [0, 0, 0, 0]
            day += dt.timedelta(days=1)
        for row in self.door_hours:
            cell = days.setdefault(row.hour.date(), [0, 0, 0, 0])
            cell[0] += row.entries
            cell[1] += row.exits
        for hour, (baskets, cents) in self.sales_by_hour.items():
            cell = days.setdefault(hour.date(), [0, 0, 0, 0])
            cell[2] += baskets
            cell[3] += cents
        return [(d, *v) for d, v in sorted(days.items())]  # type: ignore[misc]


def _local_hour(zone: LocalZone, quarter: int) -> dt.datetime:
    return zone.at(quarter * QUARTER_NS).replace(minute=0, second=0, microsecond=0)


def period(conn: sqlite3.Connection, zone: LocalZone, start: dt.datetime, end: dt.datetime) -> Period:
    """Exact door counts and sales from `start` to `end` (local datetimes)."""
    lo, hi = zone.ns(start), zone.ns(end)
    doors: dict[tuple[str, dt.datetime], DoorHour] = {}
    for door, quarter, entries, exits in conn.execute(
        "SELECT door, wall_ns / ?, sum(entries), sum(exits) FROM events"
        " WHERE synced = 1 AND wall_ns >= ? AND wall_ns < ? GROUP BY door, wall_ns / ?",
        (QUARTER_NS, lo, hi, QUARTER_NS),
    ):
        hour = _local_hour(zone, int(quarter))
        cell = doors.setdefault((str(door), hour), DoorHour(str(door), hour))
        cell.entries += int(entries)
        cell.exits += int(exits)
    sales_by_hour: dict[dt.datetime, tuple[int, int]] = {}
    for quarter, baskets, cents in conn.execute(
        "SELECT wall_ns / ?, count(*), sum(total_cents) FROM baskets WHERE synced = 1 AND kind = 'sale'"
        " AND flagged = '' AND wall_ns >= ? AND wall_ns < ? GROUP BY wall_ns / ?",
        (QUARTER_NS, lo, hi, QUARTER_NS),
    ):
        hour = _local_hour(zone, int(quarter))
        b, c = sales_by_hour.get(hour, (0, 0))
        sales_by_hour[hour] = (b + int(baskets), c + int(cents))
    categories = [
        CategorySales(str(cat), int(b), int(q), int(c))
        for cat, b, q, c in conn.execute(
            "SELECT l.category, count(DISTINCT l.basket_id), sum(l.quantity), sum(l.line_total_cents)"
            " FROM basket_lines l JOIN baskets b ON b.id = l.basket_id WHERE b.synced = 1 AND b.kind = 'sale'"
            " AND b.flagged = '' AND b.wall_ns >= ? AND b.wall_ns < ? GROUP BY l.category ORDER BY 4 DESC",
            (lo, hi),
        )
    ]
    refunds, refunds_cents = conn.execute(
        "SELECT count(*), coalesce(sum(total_cents), 0) FROM baskets WHERE synced = 1 AND kind != 'sale'"
        " AND wall_ns >= ? AND wall_ns < ?",
        (lo, hi),
    ).fetchone()
    currency = conn.execute(
        "SELECT currency FROM baskets WHERE wall_ns >= ? AND wall_ns < ? GROUP BY currency ORDER BY count(*) DESC",
        (lo, hi),
    ).fetchone()
    waiting = sum(
        int(conn.execute(f"SELECT count(*) FROM {table} WHERE synced = 0").fetchone()[0])
        for table in ("events", "baskets")
    )
    return Period(
        start=start,
        end=end,
        door_hours=sorted(doors.values(), key=lambda r: (r.hour, r.door)),
        categories=categories,
        baskets=sum(b for b, _ in sales_by_hour.values()),
        revenue_cents=sum(c for _, c in sales_by_hour.values()),
        refunds=int(refunds),
        refunds_cents=int(refunds_cents),
        currency=str(currency[0]) if currency else "",
        sales_by_hour=sales_by_hour,
        waiting_for_clock=waiting,
    )


def today(conn: sqlite3.Connection, zone: LocalZone, now_ns: int) -> Period:
    start = zone.day_start(now_ns)
    return period(conn, zone, start, zone.day_start(now_ns, -1))


def this_week(conn: sqlite3.Connection, zone: LocalZone, now_ns: int) -> Period:
    start = zone.week_start(now_ns)
    return period(conn, zone, start, zone.day_start(now_ns, -1))


def _cell(value: object) -> object:
    # A spreadsheet runs a cell that starts with = + - @ as a formula; receipt text must never do that.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def sales_csv(conn: sqlite3.Connection, zone: LocalZone, start: dt.datetime, end: dt.datetime) -> str:
    """One line per basket line in local time, for the shop's accountant (exact amounts in cents and units)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [f"time ({zone.name})", "kind", "receipt", "payment", "currency", "basket total", "item", "sku",
         "category", "quantity", "unit price", "line total", "flagged"]
    )  # fmt: skip
    for (
        wall,
        kind,
        source,
        payment,
        currency,
        total,
        name,
        sku,
        category,
        qty,
        unit,
        line_total,
        flagged,
    ) in conn.execute(
        "SELECT b.wall_ns, b.kind, b.source_id, b.payment, b.currency, b.total_cents, l.name, l.sku,"
        " l.category, l.quantity, l.unit_price_cents, l.line_total_cents, b.flagged FROM baskets b"
        " LEFT JOIN basket_lines l ON l.basket_id = b.id WHERE b.wall_ns >= ? AND b.wall_ns < ?"
        " ORDER BY b.wall_ns, b.id",
        (zone.ns(start), zone.ns(end)),
    ):
        text = [_cell(v) for v in (kind, source, payment, currency, name or "", sku or "", category or "", flagged)]
        writer.writerow(
            [zone.at(wall).strftime("%Y-%m-%d %H:%M:%S"), *text[:4], _cents(total), *text[4:7],
             qty if qty is not None else "", _cents(unit), _cents(line_total), text[7]]
        )  # fmt: skip
    return out.getvalue()


def footfall_csv(conn: sqlite3.Connection, zone: LocalZone, start: dt.datetime, end: dt.datetime) -> str:
    """Exact entries and exits per door and local hour."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([f"hour ({zone.name})", "door", "entries", "exits"])
    for row in period(conn, zone, start, end).door_hours:
        writer.writerow([row.hour.strftime("%Y-%m-%d %H:%M"), _cell(row.door), row.entries, row.exits])
    return out.getvalue()


def _cents(value: int | None) -> str:
    if value is None:
        return ""
    sign = "-" if value < 0 else ""
    return f"{sign}{abs(value) // 100}.{abs(value) % 100:02d}"
