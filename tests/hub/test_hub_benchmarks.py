"""District benchmarks: quartiles, the k-shop threshold, the published payload."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hub.benchmarks import (
    benchmark_payload,
    quantile,
    refresh_benchmarks,
    refresh_sales_benchmarks,
    sales_share_payload,
    weekday_hour_profile,
)
from hub.contract import Summary, hub_validator
from hub.db import Connection
from hub.queries import ShopSales, latest_benchmark_payload, shop_sales
from hub.storage import store_batch
from tests.hub.test_hub_storage import T0, sale, summary


@pytest.mark.parametrize("values", [[3], [1, 2], [5, 1, 9, 7], list(range(-5, 40, 3))])
def test_quantiles_match_numpy_linear(values: list[int]) -> None:
    for p in (0.25, 0.5, 0.75):
        assert quantile(sorted(values), p) == pytest.approx(float(np.quantile(values, p)))


def test_no_benchmark_below_k_shops() -> None:
    assert benchmark_payload("riverside", T0, 3600, [10, 20, 30, 40], k_min=5) is None
    payload = benchmark_payload("riverside", T0, 3600, [10, 20, 30, 40, 50], k_min=5)
    assert payload is not None and (payload["n_shops"], payload["median"], payload["p25"]) == (5, 30.0, 20.0)
    assert list(hub_validator("benchmark.v1.json").iter_errors(payload)) == []


def test_benchmarks_sum_doors_and_skip_incomplete_shops(conn: Connection) -> None:
    rows = []
    for i in range(3):
        rows += [
            summary(f"s{i}", 0, 1, entries=10 * (i + 1), door="front"),
            summary(f"s{i}", 0, 2, entries=1, door="back"),
        ]
    rows.append(summary("s3", 1, 3, entries=5, door="front"))  # s3 has two doors overall ...
    rows.append(summary("s3", 1, 4, entries=5, door="back"))
    rows.append(summary("s3", 0, 1, entries=999, door="front"))  # ... but only one in window 0: incomplete
    store_batch(conn, "w1", rows)
    published = refresh_benchmarks(conn, "riverside", 3, [T0])
    assert len(published) == 1
    topic, text = published[0]
    assert topic == "coop/v1/riverside/_hub/t1/benchmarks/footfall/2025-11-16T00:00:00Z"
    doc = json.loads(text)
    assert (doc["n_shops"], doc["p25"], doc["median"], doc["p75"]) == (3, 16.0, 21.0, 26.0)
    assert refresh_benchmarks(conn, "riverside", 3, [T0]) == []  # unchanged: not published again
    assert refresh_benchmarks(conn, "riverside", 4, [T0]) == []


def test_weekday_hour_profile_takes_the_median_over_weeks() -> None:
    rows = [
        {"window_start_s": T0 + 9 * 3600 + w * 7 * 86400, "p25": w, "median": 10 * w, "p75": 100 * w} for w in range(3)
    ]
    (cell,) = weekday_hour_profile(rows)
    assert (cell["weekday"], cell["hour"], cell["weeks"], cell["median"]) == (6, 9, 3, 10.0)


def test_shop_shares_clamp_negative_noise_and_skip_a_zero_total() -> None:
    shop = ShopSales("s1", T0, 3600, {"bakery": 300, "dairy": -40, "other": 100}, baskets=8)
    assert shop.shares() == {"bakery": 0.75, "dairy": 0.0, "other": 0.25}
    assert shop.basket_value() == pytest.approx(360 / 8)  # total revenue (unclamped sum) / baskets
    assert ShopSales("s1", T0, 3600, {"bakery": -5, "other": 0}, baskets=3).shares() is None
    assert ShopSales("s1", T0, 3600, {"bakery": 5}, baskets=-1).basket_value() is None
    assert ShopSales("s1", T0, 3600, None, baskets=4).shares() is None


def test_no_sales_share_below_k_shops_and_rare_categories_left_out() -> None:
    shops = [{"bakery": 0.1 * i, "other": 1 - 0.1 * i} for i in range(1, 5)]
    assert sales_share_payload("riverside", T0, 3600, shops, k_min=5) is None
    shops.append({"bakery": 0.5, "other": 0.3, "flowers": 0.2})  # only one shop sells flowers
    payload = sales_share_payload("riverside", T0, 3600, shops, k_min=5)
    assert payload is not None and payload["metric"] == "sales-share" and payload["n_shops"] == 5
    assert set(payload["categories"]) == {"bakery", "other"}
    bakery = payload["categories"]["bakery"]
    assert (bakery["n_shops"], bakery["p25"], bakery["median"], bakery["p75"]) == pytest.approx((5, 0.2, 0.3, 0.4))
    assert list(hub_validator("benchmark.v1.json").iter_errors(payload)) == []


def shop_window(store: str, revenue: dict[str, int | None], baskets: int | None, hour: int = 0) -> list[Summary]:
    rows = [sale(store, "revenue", c, v, hour, i + 1) for i, (c, v) in enumerate(revenue.items())]
    return [*rows, sale(store, "count", "all", baskets, hour, len(rows) + 1)]


def test_sales_benchmarks_from_stored_t2_summaries(conn: Connection) -> None:
    rows = []
    for i, (bakery, other) in enumerate([(100, 300), (200, 200), (300, 100)]):
        rows += shop_window(f"s{i}", {"bakery": bakery, "dairy": -50, "other": other}, baskets=10 * (i + 1))
    rows += shop_window("s3", {"bakery": 500, "dairy": 1, "other": None}, baskets=5)  # suppressed: incomplete
    rows += shop_window("s4", {"bakery": 500, "dairy": 1}, baskets=5)  # "other" missing: incomplete
    rows += shop_window("s4", {"bakery": 1, "dairy": 1, "other": 1}, baskets=5, hour=1)  # s4 reports 3 categories
    rows += shop_window("s5", {"bakery": -9, "other": -1}, baskets=5)  # clamped total 0: skipped
    store_batch(conn, "w1", rows)
    assert [s.store for s in shop_sales(conn, [T0]) if s.shares() is not None] == ["s0", "s1", "s2"]
    published = dict(refresh_sales_benchmarks(conn, "riverside", 3, [T0]))
    # Nothing on tier 1: only each shop's own position, on its private topic.
    assert sorted(published) == [f"coop/v1/riverside/_hub/t2/sales-position/s{i}" for i in (0, 1, 2, 5)]
    shares = latest_benchmark_payload(conn, "sales-share", T0, 3600)  # the admin's quartiles, stored only
    assert shares is not None and shares["n_shops"] == 3 and shares["streams"] == ["sales-revenue/hourly"]
    assert shares["categories"]["bakery"] == {"n_shops": 3, "p25": 0.375, "median": 0.5, "p75": 0.625}
    assert shares["categories"]["dairy"]["median"] == 0.0
    assert shares["privacy"]["post_processing"] is True
    value = latest_benchmark_payload(conn, "basket-value", T0, 3600)
    # total revenue / baskets: s0 350/10, s1 350/20, s2 350/30; s3, s4 incomplete; s5 total clamped to 0 / 5.
    assert value is not None and value["n_shops"] == 4
    assert value["median"] == pytest.approx((350 / 30 + 350 / 20) / 2)
    for doc in (shares, value):
        assert list(hub_validator("benchmark.v1.json").iter_errors(doc)) == []
    s0 = json.loads(published["coop/v1/riverside/_hub/t2/sales-position/s0"])
    # s0's bakery share 0.25 is below p25 (0.375); its basket value 35.0 is the highest of four.
    assert s0["categories"]["bakery"] == {"n_shops": 3, "band": "below_p25"}
    assert s0["basket_value"] == {"n_shops": 4, "band": "above_p75"}
    assert list(hub_validator("sales-position.v1.json").iter_errors(s0)) == []
    s5 = json.loads(published["coop/v1/riverside/_hub/t2/sales-position/s5"])
    assert s5["categories"] == {} and s5["basket_value"] == {"n_shops": 4, "band": "below_p25"}
    assert refresh_sales_benchmarks(conn, "riverside", 3, [T0]) == []  # unchanged: not published again
    assert refresh_sales_benchmarks(conn, "riverside", 5, [T0]) == []  # too few shops
