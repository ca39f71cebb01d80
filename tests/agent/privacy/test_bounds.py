"""Basket contribution bounds: enforced before aggregation, sensitivities derived from them."""

from __future__ import annotations

import itertools

import pytest

from agent.privacy.bounds import OTHER, BasketBounds, LineItem, bound_basket

TAXONOMY = ("bakery", "dairy", "produce", "other")
BOUNDS = BasketBounds(
    max_categories=2, max_items_per_category=5, max_revenue_per_category_cents=3_000, max_revenue_per_basket_cents=4_000
)


def test_revenue_above_the_category_clamp_is_clamped() -> None:
    out = bound_basket([LineItem("bakery", 1, 9_999)], TAXONOMY, BOUNDS)
    assert out["bakery"].revenue_cents == 3_000


def test_basket_revenue_is_scaled_into_the_basket_clamp() -> None:
    out = bound_basket([LineItem("bakery", 1, 3_000), LineItem("dairy", 1, 3_000)], TAXONOMY, BOUNDS)
    assert sum(c.revenue_cents for c in out.values()) <= 4_000
    assert out["bakery"].revenue_cents == out["dairy"].revenue_cents == 2_000


def test_item_count_is_capped_per_category() -> None:
    out = bound_basket([LineItem("produce", 7, 700), LineItem("produce", 4, 400)], TAXONOMY, BOUNDS)
    assert out["produce"].items == 5 and out["produce"].baskets == 1


def test_unknown_category_is_released_under_other() -> None:
    out = bound_basket([LineItem("fireworks", 1, 500), LineItem("", 1, 100)], TAXONOMY, BOUNDS)
    assert set(out) == {OTHER} and out[OTHER].revenue_cents == 600


def test_a_basket_touches_at_most_max_categories() -> None:
    items = [LineItem(c, 1, r) for c, r in (("bakery", 100), ("dairy", 900), ("produce", 500))]
    out = bound_basket(items, TAXONOMY, BOUNDS)
    assert set(out) == {"dairy", "produce"}, "the largest two by revenue, a function of this basket alone"


def test_refunds_and_voids_add_nothing_to_sales() -> None:
    assert bound_basket([LineItem("bakery", -1, -500), LineItem("dairy", 1, -20)], TAXONOMY, BOUNDS) == {}


def test_sensitivities_come_from_the_bounds() -> None:
    assert BOUNDS.count_l1 == 2 and BOUNDS.count_l2_squared == 2
    assert BOUNDS.revenue_l1 == 4_000  # min(R, m * C)
    assert BOUNDS.revenue_l2_squared == min(2 * 3_000**2, 3_000 * 4_000)


@pytest.mark.parametrize("seed", range(3))
def test_no_basket_exceeds_the_declared_sensitivity(seed: int) -> None:
    """Exhaustively over small baskets: the L1 and L2^2 of a bounded basket never exceed the bounds'."""
    cats = ("bakery", "dairy", "produce", "toys")
    amounts = (0, 1_500 + seed, 2_900, 6_000)
    for combo in itertools.product(amounts, repeat=len(cats)):
        items = [LineItem(c, 3 + seed, a) for c, a in zip(cats, combo, strict=True) if a]
        out = bound_basket(items, TAXONOMY, BOUNDS)
        assert sum(c.baskets for c in out.values()) <= BOUNDS.count_l1
        assert sum(c.revenue_cents for c in out.values()) <= BOUNDS.revenue_l1
        assert sum(c.revenue_cents**2 for c in out.values()) <= BOUNDS.revenue_l2_squared


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_categories"):
        BasketBounds(max_categories=0)
