"""The fixed catalogue of queries a coop may ask, each with its exact sensitivity, and their true answers.

Every kind's answer is a table of integer counts over public keys, so it takes discrete Laplace noise
with scale L1/epsilon (privacy/sampler.py). The privacy unit is the same as the hourly summaries' (one
door event, one basket), and each unit lies in exactly one window, so a query over a date range costs its
epsilon once in every window of the range (the privacy filter, privacy/accountant.py).

- footfall_hour_of_week {start, end}: entries per hour of the week (168 cells, mon-00 .. sun-23) summed
  over the UTC dates [start, end). One door event is one entry or one exit: it adds at most 1 to one
  cell, so L1 = 1.
- category_shares_by_month {month}: baskets that touched each category of the public taxonomy in one UTC
  month, after the basket bounds (privacy/bounds.py); the requester divides by the sum for shares. One
  basket adds 1 to at most `max_categories` categories, so L1 = max_categories.
- basket_value_bins {start, end}: how many baskets fall in each fixed value bin (cents, after the
  revenue clamp per basket). One basket is in exactly one bin, so L1 = 1.

A query may ask for a district figure (`"combine": "secure_aggregation"`, signed with the rest): then no
shop's answer leaves on its own. Each accepting box enters its true table into one secure-aggregation round
(agent/coop/round_participant.py) whose distributed discrete Gaussian noise makes the district sum
rho-zCDP with rho = epsilon^2 / 2, the zCDP cost the accountant charges for a pure epsilon answer (Bun and
Steinke 2016, Proposition 1.4), so saying yes costs the same either way. That mechanism needs the L2
sensitivity: one unit moves one cell by 1 (L2 = 1) for footfall and bins, and up to max_categories cells by 1
for category shares (L2 = sqrt(max_categories), rounded up to a whole number for the round).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Iterator
from fractions import Fraction

import numpy as np

from agent.clock import NS_PER_S
from agent.contract import BASKET, DOOR_EVENT
from agent.contract.licensing import (  # the protocol's part of the catalogue, re-exported here
    BASKET_VALUE_BINS as BASKET_VALUE_BINS,
)
from agent.contract.licensing import (
    CATEGORY_SHARES_BY_MONTH as CATEGORY_SHARES_BY_MONTH,
)
from agent.contract.licensing import (
    COUNT_FIELD as COUNT_FIELD,
)
from agent.contract.licensing import (
    FOOTFALL_HOUR_OF_WEEK as FOOTFALL_HOUR_OF_WEEK,
)
from agent.contract.licensing import (
    KINDS as KINDS,
)
from agent.contract.licensing import (
    MAX_RANGE_DAYS as MAX_RANGE_DAYS,
)
from agent.contract.licensing import (
    SECURE_AGGREGATION,
)
from agent.contract.licensing import (
    BadQuery as BadQuery,
)
from agent.contract.licensing import (
    query_range as query_range,
)
from agent.privacy.bounds import BasketBounds, LineItem, bound_basket

UNITS = {FOOTFALL_HOUR_OF_WEEK: DOOR_EVENT, CATEGORY_SHARES_BY_MONTH: BASKET, BASKET_VALUE_BINS: BASKET}
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HOUR_OF_WEEK_KEYS = tuple(f"{d}-{h:02d}" for d in DAYS for h in range(24))
BIN_EDGES_CENTS = (0, 500, 1000, 2000, 5000, 10000, 20000)  # the last bin is open: 20000 and above
BIN_KEYS = tuple(
    f"{lo}-{hi - 1}" if hi else f"{lo}+" for lo, hi in zip(BIN_EDGES_CENTS, (*BIN_EDGES_CENTS[1:], 0), strict=True)
)


@dataclasses.dataclass(frozen=True)
class Query:
    """One verified query from the coop."""

    query_id: str
    kind: str
    params: dict[str, str]
    requester: str
    purpose: str
    epsilon: Fraction
    credit_cents: int
    expires_ns: int
    nonce: str
    start_ns: int  # the UTC range the answer covers, [start, end)
    end_ns: int
    combine: str = ""  # SECURE_AGGREGATION: a district figure, combined by secure aggregation

    def about(self) -> dict[str, object]:
        """What the ledger rows of this query's answer, refusal or round record about it (with the credit)."""
        return {
            "query_id": self.query_id,
            "kind": self.kind,
            "params": self.params,
            "requester": self.requester,
            "purpose": self.purpose,
            "credit_cents": self.credit_cents,
        }

    @property
    def district(self) -> bool:
        return self.combine == SECURE_AGGREGATION

    @property
    def round_rho(self) -> Fraction:
        """The zCDP rho a district round may charge each window: epsilon^2 / 2 (docstring above)."""
        return self.epsilon**2 / 2

    @property
    def unit(self) -> str:
        return UNITS[self.kind]

    @property
    def stream(self) -> str:
        """The ledger's stream name of this query's answer (or refusal)."""
        return f"query:{self.query_id}"

    def windows(self, window_ns: int) -> Iterator[int]:
        """The start of every window of the grid the range touches (each spends the query's epsilon)."""
        first = self.start_ns - self.start_ns % window_ns
        return iter(range(first, self.end_ns, window_ns))


def keys_of(kind: str, taxonomy: tuple[str, ...]) -> tuple[str, ...]:
    """The public keys of a kind's answer, all released (zeros included)."""
    if kind == FOOTFALL_HOUR_OF_WEEK:
        return HOUR_OF_WEEK_KEYS
    if kind == BASKET_VALUE_BINS:
        return BIN_KEYS
    return taxonomy


def l1_sensitivity(kind: str, bounds: BasketBounds | None) -> int:
    """How much one privacy unit can move the answer's table in L1 (derivations in the module docstring)."""
    if kind == CATEGORY_SHARES_BY_MONTH:
        assert bounds is not None
        return bounds.max_categories
    return 1


def l2_sensitivity_ceiling(kind: str, bounds: BasketBounds | None) -> int:
    """A whole number at least the answer's L2 sensitivity to one unit (the secure round declares it)."""
    if kind == CATEGORY_SHARES_BY_MONTH:
        assert bounds is not None
        return math.isqrt(bounds.max_categories - 1) + 1  # ceil(sqrt(max_categories))
    return 1


def hour_of_week(ns: int) -> int:
    when = dt.datetime.fromtimestamp(ns // NS_PER_S, dt.UTC)
    return when.weekday() * 24 + when.hour


def footfall_hour_of_week(rows: list[tuple[int, int]]) -> np.ndarray:
    """Entries per hour of the week from (window start ns, entries) rows of windows at most an hour long."""
    table = np.zeros(len(HOUR_OF_WEEK_KEYS), dtype=np.int64)
    for window_ns, entries in rows:
        table[hour_of_week(window_ns)] += entries
    return table


def category_baskets(
    lines: list[tuple[int, str, int, int]], taxonomy: tuple[str, ...], bounds: BasketBounds
) -> np.ndarray:
    """Baskets that touched each category, each basket bounded first (at most max_categories of them)."""
    index = {c: i for i, c in enumerate(taxonomy)}
    table = np.zeros(len(taxonomy), dtype=np.int64)
    for items in _baskets(lines).values():
        for category, c in bound_basket(items, taxonomy, bounds).items():
            table[index[category]] += c.baskets
    return table


def basket_value_bins(
    lines: list[tuple[int, str, int, int]], taxonomy: tuple[str, ...], bounds: BasketBounds
) -> np.ndarray:
    """How many bounded baskets fall in each value bin."""
    table = np.zeros(len(BIN_KEYS), dtype=np.int64)
    for items in _baskets(lines).values():
        contributions = bound_basket(items, taxonomy, bounds)
        if not contributions:
            continue
        value = sum(c.revenue_cents for c in contributions.values())
        table[int(np.searchsorted(BIN_EDGES_CENTS, value, side="right")) - 1] += 1
    return table


def _baskets(lines: list[tuple[int, str, int, int]]) -> dict[int, list[LineItem]]:
    out: dict[int, list[LineItem]] = {}
    for basket_id, category, quantity, total in lines:
        out.setdefault(basket_id, []).append(LineItem(category, quantity, total))
    return out
