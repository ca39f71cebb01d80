"""A seeded simulated district: shops of several kinds and sizes under shared weather, holidays and events.

Hourly entries per shop and daily sales per category (integer cents), on one local-time grid that starts at
local midnight of `start` (the simulation has no DST: hour i of the grid is hour i % 24 of day i // 24).
What the shops share is what a district model can learn from their sums: the season, the weather of the
day, fixed-date holidays (every shop shuts or runs a short day) and local events (a market afternoon).
What differs is each shop's kind (opening hours, weekday and hour shape, categories), size and trend.
Some shops are new: they exist only from `start_day` on (their series are zero before, and they add
nothing to the district's sums before it). numpy's seeded Generator is fine: a simulation, not noise.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np

HOURS = 24
Array = np.ndarray


@dataclasses.dataclass(frozen=True)
class Kind:
    """A kind of shop: open hours per weekday (Mon..Sun, None = closed), hour bumps, categories."""

    name: str
    hours: tuple[tuple[int, int] | None, ...]
    peaks: tuple[tuple[float, float, float], ...]  # (hour, width, weight) Gaussian bumps of the hour shape
    weekday: tuple[float, ...]
    weather_sensitivity: float  # how much a bad-weather day moves this kind (a cafe's terrace, a grocer's need)
    categories: tuple[tuple[str, float, int], ...]  # (category, share of buyers, mean basket cents)
    conversion: float  # baskets per entry


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("bakery", ((7, 18),) * 6 + ((8, 13),), ((8.5, 1.2, 1.0), (12.5, 1.0, 0.7), (16.5, 1.2, 0.4)),
             (1.0, 0.95, 0.95, 1.0, 1.1, 1.35, 0.9), 0.6,
             (("bread", 0.8, 450), ("pastry", 0.5, 600), ("coffee", 0.3, 320)), 0.85),
        Kind("grocer", ((8, 20),) * 6 + (None,), ((11.5, 1.5, 0.8), (17.5, 1.3, 1.0)),
             (0.9, 0.9, 0.95, 1.0, 1.2, 1.4, 1.0), 0.4,
             (("produce", 0.7, 1200), ("dairy", 0.6, 800), ("household", 0.3, 1500)), 0.7),
        Kind("cafe", ((8, 19),) * 5 + ((9, 19), (9, 17)), ((10.0, 1.5, 0.8), (13.0, 1.2, 1.0), (15.5, 1.3, 0.7)),
             (0.8, 0.85, 0.9, 0.95, 1.1, 1.5, 1.3), 1.0,
             (("coffee", 0.9, 380), ("food", 0.5, 850)), 0.9),
        Kind("bookshop", (None,) + ((10, 18),) * 5 + ((11, 17),), ((12.5, 2.0, 0.8), (15.5, 1.5, 1.0)),
             (1.0, 0.8, 0.85, 0.9, 1.0, 1.6, 1.2), -0.5,
             (("books", 0.5, 1800), ("stationery", 0.3, 700)), 0.45),
    )
}  # fmt: skip

# Fixed-date holidays (month, day): shut, except the cafe, which runs a short, quiet day.
HOLIDAYS = ((1, 1), (4, 18), (4, 21), (5, 1), (5, 29), (6, 9), (10, 3), (12, 25), (12, 26))
# Days before a holiday are busier (people stock up), and the week before Christmas more so.
EVE_BOOST = 1.25


@dataclasses.dataclass(frozen=True)
class ShopSpec:
    """One simulated shop: id, kind, size (mean entries in its busiest hour) and first day of data."""

    shop_id: str
    kind: str
    size: float
    start_day: int = 0
    trend_per_year: float = 0.0  # log growth per year


@dataclasses.dataclass
class District:
    """The simulated district: calendar, shared effects, and each shop's series (ground truth)."""

    start: dt.date
    days: int
    shops: list[ShopSpec]
    weather: Array  # (days,) shared log-factor of the day
    holiday: Array  # (days,) bool
    event: Array  # (days,) bool: a market afternoon
    footfall: dict[str, Array]  # (days * 24,) int64 entries per local hour
    open_hours: dict[str, Array]  # (days * 24,) bool: the shop was open (and existed)
    sales: dict[str, dict[str, Array]]  # (days,) int64 cents per category per day
    rate: dict[str, Array]  # (days * 24,) the Poisson mean of each hour before the hour's own noise

    def date(self, day: int) -> dt.date:
        return self.start + dt.timedelta(days=day)

    def shop(self, shop_id: str) -> ShopSpec:
        return next(s for s in self.shops if s.shop_id == shop_id)

    def district_hourly(self, until_hour: int | None = None) -> Array:
        """The true sum over shops of hourly entries (what secure aggregation sums, before noise)."""
        total = sum(self.footfall[s.shop_id] for s in self.shops)
        return np.asarray(total)[:until_hour]


def calendar(start: dt.date, days: int) -> tuple[Array, Array, Array, Array]:
    """(weekday, day of year, holiday flag, eve flag) per day."""
    dates = [start + dt.timedelta(days=d) for d in range(days)]
    weekday = np.array([d.weekday() for d in dates])
    doy = np.array([d.timetuple().tm_yday for d in dates])
    holiday = np.array([(d.month, d.day) in HOLIDAYS for d in dates])
    eve = np.array([(n.month, n.day) in HOLIDAYS for n in (d + dt.timedelta(days=1) for d in dates)])
    eve |= np.array([d.month == 12 and 18 <= d.day <= 23 for d in dates])
    return weekday, doy, holiday, eve & ~holiday


def hour_shape(kind: Kind, weekday: int) -> Array:
    """Relative busyness of each hour of one weekday (zero when closed), peak 1."""
    span = kind.hours[weekday]
    shape = np.zeros(HOURS)
    if span is None:
        return shape
    h = np.arange(HOURS) + 0.5
    bumps = sum(w * np.exp(-0.5 * ((h - c) / s) ** 2) for c, s, w in kind.peaks)
    shape = 0.25 + np.asarray(bumps)
    shape[: span[0]] = 0.0
    shape[span[1] :] = 0.0
    return np.asarray(shape / shape.max())


def default_shops(established: int = 16, new: int = 8, seed: int = 7, new_from_day: int = 399) -> list[ShopSpec]:
    """A mix of kinds and sizes; `new` shops open on days spread from `new_from_day` on."""
    rng = np.random.default_rng(seed)
    kinds = list(KINDS)
    shops = [
        ShopSpec(f"shop-{i:02d}", kinds[i % len(kinds)], float(rng.choice([6, 12, 25, 50, 90])),
                 0, float(rng.normal(0, 0.1)))
        for i in range(established)
    ]  # fmt: skip
    shops += [
        ShopSpec(f"new-{i:02d}", kinds[(i + 1) % len(kinds)], float(rng.choice([6, 12, 25, 50])),
                 new_from_day + 28 * i, 0.0)
        for i in range(new)
    ]  # fmt: skip
    return shops


def simulate(
    shops: list[ShopSpec] | None = None, days: int = 730, seed: int = 2026, start: dt.date = dt.date(2025, 1, 6)
) -> District:
    """The district's series for `days` days from `start` (a Monday), deterministic for `seed`."""
    shops = shops if shops is not None else default_shops()
    rng = np.random.default_rng(seed)
    weekday, doy, holiday, eve = calendar(start, days)
    weather = np.zeros(days)
    for d in range(1, days):  # AR(1): a wet spell lasts a few days
        weather[d] = 0.7 * weather[d - 1] + rng.normal(0, 0.1)
    event = rng.random(days) < 1 / 30
    season = 0.15 * np.cos(2 * np.pi * (doy - 350) / 365.25)  # busier towards Christmas
    footfall: dict[str, Array] = {}
    open_hours: dict[str, Array] = {}
    sales: dict[str, dict[str, Array]] = {}
    rate: dict[str, Array] = {}
    for shop in shops:
        kind = KINDS[shop.kind]
        shapes = np.stack([hour_shape(kind, w) for w in range(7)])  # (7, 24)
        day_log = (
            season
            + kind.weather_sensitivity * weather
            + np.log(np.asarray(kind.weekday))[weekday]
            + np.log(EVE_BOOST) * eve
            + shop.trend_per_year * np.arange(days) / 365.25
        )
        lam = shop.size * shapes[weekday] * np.exp(day_log)[:, None]  # (days, 24)
        afternoon = (np.arange(HOURS) >= 13) & (np.arange(HOURS) < 18)
        lam[event] *= np.where(afternoon, 1.5, 1.0)
        is_open = shapes[weekday] > 0
        lam[holiday] *= 0.35 if shop.kind == "cafe" else 0.0
        is_open[holiday] &= shop.kind == "cafe"
        lam[: shop.start_day] = 0.0
        is_open[: shop.start_day] = False
        # Overdispersed counts: a gamma-mixed Poisson (groups, buses, a rainy quarter of an hour).
        counts = rng.poisson(lam * rng.gamma(20.0, 1 / 20.0, lam.shape))
        footfall[shop.shop_id] = counts.reshape(-1).astype(np.int64)
        rate[shop.shop_id] = lam.reshape(-1)
        open_hours[shop.shop_id] = is_open.reshape(-1)
        daily = counts.sum(axis=1)
        sales[shop.shop_id] = {}
        for category, share, basket in kind.categories:
            weekday_tilt = np.where(weekday >= 5, 1.1, 1.0) if category in ("pastry", "food", "books") else 1.0
            buyers = rng.binomial(daily, min(1.0, kind.conversion * share))
            cents = buyers * basket * weekday_tilt * np.exp(rng.normal(0, 0.08, days))
            sales[shop.shop_id][category] = np.round(cents).astype(np.int64)
    return District(start, days, shops, weather, holiday, event, footfall, open_hours, sales, rate)
