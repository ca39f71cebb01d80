"""Each shop's own position among the district's POS sales figures, sent to that shop alone.

Tier 2 (category sales) must not leak into tier 1 for any number of shops (DESIGN.md promise 10). District
quartiles of t2 figures published to every member did leak: with k_min = 5 and 5 shops, p25, median and p75
are three shops' exact values, and with 2 or 3 shops every value can be solved for. So the hub publishes no
t2-derived number to members at all. Each shop gets, on its private retained topic
`coop/v1/<coop>/_hub/t2/sales-position/<store>` (only the hub writes it, only that store reads it), the band
its own share of each category and its own average basket value fall in among the >= k_min shops of the
window: below p25, p25 to median, median to p75, above p75. A band is an order relation between released
noisy values, never a value: whatever a coalition of members pools (their own values and bands), what they
learn of another shop is an interval, not a number (docs/privacy.md, "Tier 2 stays tier 2"). The quartiles
themselves stay in the hub's database for the coop admin, who reads tier 2 anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hub.contract import iso, sales_position_topic
from hub.quantiles import quantile

POSITION_SCHEMA = "shopkeeper.hub-sales-position.v1"
BANDS = ("below_p25", "p25_to_median", "median_to_p75", "above_p75")
BAND_WORDS = {
    "below_p25": "in the lowest quarter of the district",
    "p25_to_median": "below the district median",
    "median_to_p75": "above the district median",
    "above_p75": "in the highest quarter of the district",
}


def band(value: float, values: list[float]) -> str:
    """Where `value` lies among `values` (type-7 quartiles, the value itself included in `values`)."""
    ordered = sorted(values)
    if value < quantile(ordered, 0.25):
        return BANDS[0]
    if value < quantile(ordered, 0.5):
        return BANDS[1]
    if value <= quantile(ordered, 0.75):
        return BANDS[2]
    return BANDS[3]


def positions(
    coop: str,
    window_start_s: int,
    window_seconds: int,
    shares: Mapping[str, Mapping[str, float]],
    basket_values: Mapping[str, float],
    k_min: int,
) -> dict[str, dict[str, Any]]:
    """store -> its position payload for one window; a figure is compared only among >= k_min shops."""
    per_category: dict[str, list[float]] = {}
    for shop in shares.values():
        for category, share in shop.items():
            per_category.setdefault(category, []).append(share)
    values = list(basket_values.values())
    out: dict[str, dict[str, Any]] = {}
    for store in sorted(set(shares) | set(basket_values)):
        categories = {
            category: {"n_shops": len(per_category[category]), "band": band(share, per_category[category])}
            for category, share in sorted(shares.get(store, {}).items())
            if len(per_category[category]) >= k_min
        }
        basket = None
        if store in basket_values and len(values) >= k_min:
            basket = {"n_shops": len(values), "band": band(basket_values[store], values)}
        if not categories and basket is None:
            continue
        out[store] = {
            "schema": POSITION_SCHEMA,
            "coop": coop,
            "store": store,
            "window": {
                "start": iso(window_start_s),
                "end": iso(window_start_s + window_seconds),
                "seconds": window_seconds,
            },
            "k_min": k_min,
            "bands": list(BANDS),
            "categories": categories,
            "basket_value": basket,
            "privacy": {
                "post_processing": True,
                "source": "order relations between released noisy values only; no value of another shop",
            },
        }
    return out


def position_messages(payloads: Mapping[str, dict[str, Any]], coop: str) -> list[tuple[str, dict[str, Any]]]:
    """(private topic, payload) per store."""
    return [(sales_position_topic(coop, store), payload) for store, payload in sorted(payloads.items())]
