"""Tier 2 stays tier 2: nothing the hub gives members lets them recover a shop's tier-2 value, for n = 2..10.

Setting: n shops release POS sales (tier 2) for one window; the hub (k_min = 2, the lowest it allows, so it
computes every figure it can) stores them and runs its periodic pass, publishing what it publishes. The
attacker is every shop but the target, pooling what members can see: every message the hub published on a
tier-1 topic, the colluders' own private messages (`_hub/t2/.../<colluder>`), and what the dashboard shows
a shop account (district page and the colluder's own page, its own figures left out), plus the colluders'
own exact tier-2 values.

"Recover" means, exactly: some number the attacker can compute equals one of the target's values (each
category's revenue in cents, its basket count, each category's share of its revenue, its average basket
value) within 1e-9 relative. The attacker computes, from every number in the pool: the number itself; the
target's value that would make it the mean or the sum of all n shops' values; and, for every rank the
target could have, the value that would make it the type-7 p25, median or p75 of the n values (the
quartiles the hub computes). That is deliberately generous to the attacker (any candidate counts, with no
need to know which one is right). Band positions are words, not numbers: they tell a coalition only whether
the target's value is above or below a quartile, an interval (docs/privacy.md).

The control runs the same attack on the tier-1 sales quartiles the hub used to publish and must recover a
value for every n: the attack has power.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.benchmarks import BASKET_VALUE, BASKET_VALUE_UNIT, benchmark_payload, sales_share_payload
from hub.config import load_hub_config
from hub.dashboard_data import district_data, shop_data
from hub.db import Database
from hub.quantiles import quantile
from hub.queries import ShopSales
from hub.storage import store_batch
from hub.tasks import PeriodicTasks
from tests.hub.test_hub_storage import T0, sale

CATEGORIES = ("bakery", "dairy", "produce", "other")
STRUCTURAL = {"n_shops", "k_min", "seconds", "window_start_s", "window_seconds", "shops", "connection"}


def numbers(doc: Any, key: str = "") -> Iterator[float]:
    """Every number in a JSON document, except counts and lengths that describe its shape."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k not in STRUCTURAL and not k.startswith("own"):
                yield from numbers(v, k)
    elif isinstance(doc, list):
        for item in doc:
            yield from numbers(item, key)
    elif isinstance(doc, int | float) and not isinstance(doc, bool):
        yield float(doc)


def candidates(x: float, others: list[float]) -> set[float]:
    """Every value of the target that would make `x` itself, the mean, the sum, or a type-7 quartile of the
    n values (the target's among them, at any rank)."""
    n = len(others) + 1
    found = {x, n * x - sum(others), x - sum(others)}
    ordered = sorted(others)
    for rank in range(n):
        for p in (0.25, 0.5, 0.75):
            pos = (n - 1) * p
            low, frac = math.floor(pos), pos - math.floor(pos)
            high = min(low + 1, n - 1)
            # The sorted list with the target at `rank`: solve x = s[low] + frac * (s[high] - s[low]) for it.
            slots = [*ordered[:rank], math.nan, *ordered[rank:]]
            a, b = slots[low], slots[high]
            if low == rank and high == rank:
                found.add(x)
            elif low == rank and frac < 1:
                found.add((x - frac * b) / (1 - frac))
            elif high == rank and frac > 0:
                found.add((x - (1 - frac) * a) / frac)
    return found


def recovered(pool: list[float], target: dict[str, float], colluders: list[dict[str, float]]) -> list[str]:
    """The target's values the attacker hits (see the module's docstring)."""
    hits = []
    for name, true in target.items():
        others = [c[name] for c in colluders if name in c]
        guesses = set().union(*(candidates(x, others) for x in pool)) if pool else set()
        if any(abs(g - true) <= 1e-9 * max(1.0, abs(true)) for g in guesses if math.isfinite(g)):
            hits.append(name)
    return hits


def shop_values(rng: random.Random) -> tuple[dict[str, int], int]:
    revenue = {c: rng.randint(-3_000, 60_000) for c in CATEGORIES}  # noisy: some come out negative
    return revenue, rng.randint(1, 400)


def figures(store: str, revenue: dict[str, int], baskets: int) -> dict[str, float]:
    """One shop's tier-2 values and the per-shop figures derived from them."""
    sales = ShopSales(store, T0, 3600, revenue, baskets)
    out: dict[str, float] = {f"revenue:{c}": v for c, v in revenue.items()}
    out["baskets"] = baskets
    out.update({f"share:{c}": v for c, v in (sales.shares() or {}).items()})
    value = sales.basket_value()
    if value is not None:
        out["basket_value"] = value
    return out


def old_tier1_payloads(shops: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """What hubs before this fix published on _hub/t1/benchmarks/sales-share and basket-value."""
    shares = [{c: f[f"share:{c}"] for c in CATEGORIES if f"share:{c}" in f} for f in shops.values()]
    values = [f["basket_value"] for f in shops.values() if "basket_value" in f]
    docs = [
        sales_share_payload("riverside", T0, 3600, shares, 2),
        benchmark_payload("riverside", T0, 3600, values, 2, metric=BASKET_VALUE, unit=BASKET_VALUE_UNIT),
    ]
    return [d for d in docs if d is not None]


def hub_run(tmp_path: Path, raw: dict[str, tuple[dict[str, int], int]]) -> tuple[Any, list[tuple[str, str]]]:
    """Store the shops' sales in a real SQLite hub, run its periodic pass; returns (config, published)."""
    (tmp_path / "hub.toml").write_text(
        f'[hub]\ncoop = "riverside"\ndatabase = "{tmp_path / "hub.db"}"\nk_min = 2\ndashboard = ""\n'
    )
    config = load_hub_config(tmp_path / "hub.toml")
    database = Database(config.database)
    database.migrate()
    conn = database.connect()
    rows = []
    for store, (revenue, baskets) in raw.items():
        rows += [sale(store, "revenue", c, v, 0, i + 1) for i, (c, v) in enumerate(revenue.items())]
        rows.append(sale(store, "count", "all", baskets, 0, len(revenue) + 1))
    store_batch(conn, "hub-test", rows)
    published: list[tuple[str, str]] = []
    PeriodicTasks(config, database, lambda t, p, _r: published.append((t, p))).run_once(conn)
    conn.close()
    return config, published


def member_view(config: Any, published: list[tuple[str, str]], colluders: list[str]) -> list[float]:
    """Every number the colluding members can read (see the module's docstring)."""
    mine = tuple(
        f"/_hub/t2/{kind}/{store}" for store in colluders for kind in ("sales-position", "watermark", "alerts")
    )
    docs: list[Any] = [json.loads(p) for t, p in published if p and ("/_hub/t1/" in t or t.endswith(mine))]
    conn = Database(config.database).connect()
    try:
        docs.append(district_data(conn, config, admin=False))
        for store in colluders:
            page = shop_data(conn, config, store, admin=False)
            assert page is not None
            docs.append(page["categories"])
    finally:
        conn.close()
    return list(numbers(docs))


@pytest.mark.parametrize("n", range(2, 11))
def test_no_member_recovers_a_tier2_value_from_what_the_hub_gives_members(tmp_path: Path, n: int) -> None:
    rng = random.Random(1300 + n)
    raw = {f"shop-{i:02d}": shop_values(rng) for i in range(n)}
    shops = {store: figures(store, *values) for store, values in raw.items()}
    config, published = hub_run(tmp_path, raw)
    assert any("/_hub/t2/sales-position/" in t for t, _p in published), "the hub did give shops their position"
    assert not [t for t, p in published if "/_hub/t1/" in t and p], "no tier-1 message derives from tier 2"
    control_hits = 0
    for target in shops:
        colluders = [s for s in shops if s != target]
        pool = member_view(config, published, colluders)
        hits = recovered(pool, shops[target], [shops[c] for c in colluders])
        assert hits == [], f"n={n}: the other shops recover {target}'s {hits}"
        control_hits += len(recovered(list(numbers(old_tier1_payloads(shops))), shops[target],
                                      [shops[c] for c in colluders]))  # fmt: skip
    assert control_hits > 0, f"n={n}: the attack recovers values from the old tier-1 quartiles (power)"


def test_the_attack_solves_the_quartiles_for_the_target_at_any_rank() -> None:
    """The solver itself: from p25, median and p75 of three values, two known, the third comes back."""
    for target in (1.0, 5.0, 9.0, 3.0):
        values = sorted([target, 3.0, 7.0])
        quartiles = [quantile(values, p) for p in (0.25, 0.5, 0.75)]
        hits = [any(abs(c - target) < 1e-12 for c in candidates(q, [3.0, 7.0])) for q in quartiles]
        assert any(hits), f"target {target} from {quartiles}"
        assert recovered(quartiles, {"v": target}, [{"v": 3.0}, {"v": 7.0}]) == ["v"]
        assert recovered([], {"v": target}, [{"v": 3.0}, {"v": 7.0}]) == []
