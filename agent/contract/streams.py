"""Every stream the agent can release, declared once; the agent's plans and the hub's queries read it here.

A stream's `name` is its configuration key and the name the release ledger hashes: never rename one.
Its `segment` is the topic level before the window name (`footfall` in `.../t1/footfall/hourly`). The
window length is not part of a stream: it is configured per shop and carried in every payload
(`window.seconds`) and in the topic's last level.
"""

from __future__ import annotations

import dataclasses

from agent.contract.windows import window_name

DOOR_EVENT = "door event"  # the privacy unit of footfall: one entry or exit
BASKET = "basket"  # the privacy unit of POS sales: one completed sale
TIERS = ("t1", "t2")  # t1: every coop member may read; t2: the hub only. Tier 3 never leaves the box.
ALL_KEY = "all"  # the key of a one-key table (footfall_store) and the basket count on sales_count


@dataclasses.dataclass(frozen=True)
class ValueField:
    """One released value and the range it may take on the wire.

    The bounds are not a plausibility model: noisy values may be negative, and a value outside them is
    certainly wrong (an overflow, a unit mistake, a forged message), so a reader may refuse it.
    """

    name: str
    minimum: int
    maximum: int

    def holds(self, value: int | None) -> bool:
        """True for a value inside the bounds, or None (suppressed by post-processing)."""
        return value is None or self.minimum <= value <= self.maximum


@dataclasses.dataclass(frozen=True)
class StreamSpec:
    """One released stream: what it is called, where it goes, what it carries and what protects it."""

    name: str  # configuration key and release-ledger stream name, e.g. "footfall_door"
    segment: str  # topic level, e.g. "footfall"
    schema_id: str  # the payload's `schema` value
    schema_file: str  # under agent/contract/schemas/
    key_field: str | None  # payload field naming the key ("door"); None for a one-key stream
    values: tuple[ValueField, ...]  # released per key, in this order
    unit: str  # the privacy unit
    tier: str  # default tier
    default_epsilon: str  # default epsilon per window (exact decimal text, as in the configuration)
    needs_pos: bool  # released only when a [pos] section gives the public category taxonomy

    @property
    def value_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.values)

    def stream(self, window_s: int) -> str:
        """The payload's `stream` and the topic's last two levels, e.g. `footfall/15min`."""
        return f"{self.segment}/{window_name(window_s)}"

    def scope(self, key: str) -> str:
        """What one message covers (the payload's `scope`): `door` (one door), `store` (the whole shop: the
        store total, or the basket count `all`) or `category` (one category of the shop's sales)."""
        if self.key_field == "door":
            return "door"
        if self.key_field is None or key == ALL_KEY:
            return "store"
        return "category"


_COUNT = 10**7  # more door events or baskets than this in one window is no shop
_CENTS = 10**12  # ten thousand million currency units per category and window

FOOTFALL_DOOR = StreamSpec(
    name="footfall_door",
    segment="footfall",
    schema_id="shopkeeper.footfall-door.v1",
    schema_file="footfall-door.v1.json",
    key_field="door",
    values=(ValueField("entries", -_COUNT, _COUNT), ValueField("exits", -_COUNT, _COUNT)),
    unit=DOOR_EVENT,
    tier="t1",
    default_epsilon="0.5",
    needs_pos=False,
)
FOOTFALL_STORE = StreamSpec(
    name="footfall_store",
    segment="footfall-total",
    schema_id="shopkeeper.footfall-store.v1",
    schema_file="footfall-store.v1.json",
    key_field=None,
    values=FOOTFALL_DOOR.values,
    unit=DOOR_EVENT,
    tier="t1",
    default_epsilon="0.5",
    needs_pos=False,
)
SALES_COUNT = StreamSpec(
    name="sales_count",
    segment="sales-count",
    schema_id="shopkeeper.sales-category.v1",
    schema_file="sales-category.v1.json",
    key_field="category",
    values=(ValueField("baskets", -_COUNT, _COUNT),),
    unit=BASKET,
    tier="t2",
    default_epsilon="0.5",
    needs_pos=True,
)
SALES_REVENUE = StreamSpec(
    name="sales_revenue",
    segment="sales-revenue",
    schema_id="shopkeeper.sales-category.v1",
    schema_file="sales-category.v1.json",
    key_field="category",
    values=(ValueField("revenue_cents", -_CENTS, _CENTS),),
    unit=BASKET,
    tier="t2",
    default_epsilon="0.5",
    needs_pos=True,
)

# In configuration order; the agent releases them in this order within a window.
STREAMS: tuple[StreamSpec, ...] = (FOOTFALL_DOOR, FOOTFALL_STORE, SALES_COUNT, SALES_REVENUE)
FOOTFALL_STREAMS = (FOOTFALL_DOOR, FOOTFALL_STORE)
SALES_STREAMS = (SALES_COUNT, SALES_REVENUE)
STATUS_SCHEMA_FILE = "status.v1.json"
SCOPES = ("door", "store", "category")

_BY_NAME = {s.name: s for s in STREAMS}
_BY_SEGMENT = {s.segment: s for s in STREAMS}


def stream_by_name(name: str) -> StreamSpec:
    """The stream with this configuration name; KeyError when there is none."""
    return _BY_NAME[name]


def stream_by_segment(segment: str) -> StreamSpec | None:
    """The stream published under this topic level, or None."""
    return _BY_SEGMENT.get(segment)


def schema_files() -> dict[str, str]:
    """Payload schema id -> schema file, for every summary stream."""
    return {s.schema_id: s.schema_file for s in STREAMS}
