"""What a driver sends the agent: frozen dataclasses, integers for counts and money."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class DoorCount:
    """People who crossed one door since this driver's previous DoorCount for that door."""

    door: str
    entries: int
    exits: int


@dataclasses.dataclass(frozen=True, slots=True)
class PresenceChange:
    """Someone is (or no longer is) present in one zone; kept on the box, never released."""

    zone: str
    present: bool


@dataclasses.dataclass(frozen=True, slots=True)
class BasketLine:
    """One line item as the POS recorded it. Everything here stays on the box."""

    name: str
    quantity: int  # whole units; a weighed item counts as 1
    unit_price_cents: int
    line_total_cents: int  # negative for a refunded line
    sku: str = ""
    pos_category: str = ""  # the POS's own category, used by the shop's mapping rules


@dataclasses.dataclass(frozen=True, slots=True)
class Basket:
    """One completed POS transaction, normalised. Money is integer cents.

    `source_id` (receipt number, order or event id) makes emission idempotent: the agent stores a
    basket once per (driver, source_id). `kind` is "sale", "refund" or "void"; `flagged` names a
    problem (e.g. "total_mismatch") that keeps the basket local and out of every release.
    """

    source_id: str
    lines: tuple[BasketLine, ...]
    total_cents: int
    kind: str = "sale"
    payment: str = ""  # "cash", "card", "other" or ""
    currency: str = ""
    flagged: str = ""
    pos_time: str = ""  # the POS's own time stamp, kept as text; the agent stamps on receipt


Reading = DoorCount | PresenceChange | Basket
