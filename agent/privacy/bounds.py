"""Contribution bounds for POS baskets, enforced in code before aggregation.

One basket is the privacy unit of the sales streams. Before a basket reaches any released table it is
mapped onto the public taxonomy (unknown categories become `other`), cut to at most `max_categories`
categories, and its item count and revenue are capped per category and per basket. All money is in
integer cents. The sensitivities the noise is calibrated with are derived from these bounds here, in
code, and nowhere else; they never depend on the data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

OTHER = "other"


@dataclasses.dataclass(frozen=True, slots=True)
class LineItem:
    """One line of a basket as the sales streams see it (the item's name stays on the box)."""

    category: str
    quantity: int
    line_total_cents: int


@dataclasses.dataclass(frozen=True, slots=True)
class CategoryContribution:
    """What one bounded basket adds to one category's cells."""

    baskets: int  # 1: the basket touched this category
    items: int
    revenue_cents: int


@dataclasses.dataclass(frozen=True)
class BasketBounds:
    """Configured caps (never learned from the data)."""

    max_categories: int = 3
    max_items_per_category: int = 10
    max_revenue_per_category_cents: int = 10_000
    max_revenue_per_basket_cents: int = 20_000

    def __post_init__(self) -> None:
        for name in (
            "max_categories",
            "max_items_per_category",
            "max_revenue_per_category_cents",
            "max_revenue_per_basket_cents",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")

    @property
    def _per_category_revenue(self) -> int:
        return min(self.max_revenue_per_category_cents, self.max_revenue_per_basket_cents)

    # One basket adds 1 to the basket count of at most max_categories categories.
    @property
    def count_l1(self) -> int:
        return self.max_categories

    @property
    def count_l2_squared(self) -> int:
        return self.max_categories

    # Its revenue is at most C per category and R in total, over at most m categories.
    @property
    def revenue_l1(self) -> int:
        return min(self.max_revenue_per_basket_cents, self.max_categories * self._per_category_revenue)

    @property
    def revenue_l2_squared(self) -> int:
        # sum x_i^2 with 0 <= x_i <= C, sum x_i <= R and at most m terms is at most min(m C^2, C R).
        c = self._per_category_revenue
        return min(self.max_categories * c * c, c * self.max_revenue_per_basket_cents)


def map_category(category: str | None, taxonomy: Sequence[str]) -> str:
    """The public category a line counts under; anything outside the taxonomy is `other`."""
    return category if category is not None and category in taxonomy else OTHER


def bound_basket(
    items: Iterable[LineItem], taxonomy: Sequence[str], bounds: BasketBounds
) -> dict[str, CategoryContribution]:
    """Clamp one basket to the bounds; the result is all this basket may add to any released cell."""
    per_category: dict[str, list[int]] = {}
    for item in items:
        if item.quantity <= 0 or item.line_total_cents < 0:
            continue  # refunds and voids are released through their own accounting, not as sales
        cell = per_category.setdefault(map_category(item.category, taxonomy), [0, 0])
        cell[0] += item.quantity
        cell[1] += item.line_total_cents
    # Keep at most max_categories categories: the largest by revenue, ties by name, so the choice is
    # a fixed function of this basket alone.
    chosen = sorted(per_category.items(), key=lambda kv: (-kv[1][1], kv[0]))[: bounds.max_categories]
    clamped = {
        cat: [min(items, bounds.max_items_per_category), min(rev, bounds.max_revenue_per_category_cents)]
        for cat, (items, rev) in chosen
    }
    total = sum(rev for _items, rev in clamped.values())
    if total > bounds.max_revenue_per_basket_cents:
        # Scale down (rounding down) so the basket's revenue fits the per-basket clamp.
        budget = bounds.max_revenue_per_basket_cents
        for cell in clamped.values():
            cell[1] = cell[1] * budget // total
    return {cat: CategoryContribution(1, items, rev) for cat, (items, rev) in clamped.items()}
