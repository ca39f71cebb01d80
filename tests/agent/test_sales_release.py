"""POS baskets: stored once, mapped onto the public taxonomy, bounded, released per category with noise."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from agent.config import AgentConfig, load_config
from agent.contract import schema_document
from agent.driver_api import Basket, BasketLine
from agent.pipeline.ingest import IngestWriter
from agent.pipeline.release import WindowReleaser
from agent.privacy.sampler import DeterministicBitSource, discrete_laplace
from agent.store import Store
from tests.conftest import BASE_CONFIG, ManualClock

POS = """
[pos]
taxonomy = ["bakery", "dairy", "produce"]
category_rules = [
  {sku = "MLK-1", category = "dairy"},
  {name_pattern = "croissant|bread", category = "bakery"},
]
[pos.bounds]
max_categories = 2
max_items_per_category = 5
max_revenue_per_category_cents = 1000
max_revenue_per_basket_cents = 1500
"""


def pos_config(tmp_path: Path) -> AgentConfig:
    path = tmp_path / "agent.toml"
    path.write_text(BASE_CONFIG.format(port=1883) + POS)
    return load_config(path, drivers={})


def basket(source: str, *lines: tuple[str, str, str, int, int], kind: str = "sale", flagged: str = "") -> Basket:
    return Basket(
        source_id=source,
        kind=kind,
        flagged=flagged,
        total_cents=sum(line[4] for line in lines),
        lines=tuple(
            BasketLine(
                name=n, sku=sku, pos_category=pc, quantity=q, unit_price_cents=t // max(q, 1), line_total_cents=t
            )
            for n, sku, pc, q, t in lines
        ),
    )


def test_baskets_are_bounded_mapped_and_released_per_category(tmp_path: Path, clock: ManualClock) -> None:
    config = pos_config(tmp_path)
    assert [p.name for p in config.streams] == ["footfall_door", "footfall_store", "sales_count", "sales_revenue"]
    store = Store(config.db_path)
    assert config.pos is not None
    writer = IngestWriter(store, clock, categorize=config.pos.categorize)
    writer.start()
    sink = writer.sink_for("till")
    clock.advance(60)
    sink.emit(basket("r1", ("Croissant", "", "", 2, 240), ("Milk", "MLK-1", "", 1, 99)))
    sink.emit(basket("r2", ("Fireworks", "", "", 1, 5000)))  # unknown -> other, clamped to 1000
    sink.emit(basket("r2", ("Fireworks", "", "", 1, 5000)))  # a replay: stored once
    sink.emit(basket("r3", ("Apples", "", "Produce", 3, 300)))  # the POS's own category matches the taxonomy
    sink.emit(basket("r4", ("Croissant", "", "", 1, -120), kind="refund"))  # refunds are not sales
    sink.emit(basket("r5", ("Bread", "", "", 1, 300), flagged="total_mismatch"))  # kept local
    assert sink.flush()
    writer.stop()
    assert store.conn().execute("SELECT count(*) FROM baskets").fetchone()[0] == 5
    assert writer.stats()["duplicate_baskets"] == 1
    releaser = WindowReleaser(config, store, clock, bits=DeterministicBitSource(b"sales"))
    clock.advance(3600 + 121)
    assert releaser.tick() == 1
    replay = DeterministicBitSource(b"sales")
    discrete_laplace(2, 1, 4, replay)  # door table
    discrete_laplace(2, 1, 2, replay)  # store total
    count_noise = discrete_laplace(6, 1, 5, replay)  # L1 = max_categories + 1 = 3, epsilon 1/2
    revenue_noise = discrete_laplace(3000, 1, 4, replay)  # L1 = min(1500, 2 * 1000) = 1500, epsilon 1/2
    messages = [json.loads(p) for (p,) in store.conn().execute("SELECT payload FROM outbox ORDER BY seq")]
    counts = {m["category"]: m["values"]["baskets"] for m in messages if m["stream"] == "sales-count/hourly"}
    revenue = {m["category"]: m["values"]["revenue_cents"] for m in messages if m["stream"] == "sales-revenue/hourly"}
    true_counts = {"bakery": 1, "dairy": 1, "produce": 1, "other": 1, "all": 3}
    true_revenue = {"bakery": 240, "dairy": 99, "produce": 300, "other": 1000}
    assert counts == {k: true_counts[k] + int(count_noise[i]) for i, k in enumerate(true_counts)}
    assert revenue == {k: true_revenue[k] + int(revenue_noise[i]) for i, k in enumerate(true_revenue)}
    schema = schema_document("sales-category.v1.json")
    for m in messages:
        if m["schema"] == "shopkeeper.sales-category.v1":
            jsonschema.validate(m, schema)
            assert m["tier"] == "t2" and m["privacy"]["unit"] == "basket"
    blob = json.dumps(messages)
    for secret in ("Croissant", "Fireworks", "Apples", "MLK-1", '"r1"', '"r2"', "total_mismatch", "refund"):
        assert secret not in blob


def test_sales_and_footfall_budgets_are_separate_units(tmp_path: Path) -> None:
    config = pos_config(tmp_path)
    units = {p.name: p.unit for p in config.streams}
    assert units["sales_count"] == units["sales_revenue"] == "basket"
    assert units["footfall_door"] == "door event"
