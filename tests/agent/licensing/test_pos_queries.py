"""The POS kinds of the catalogue: bounded baskets, answered with noise of scale L1/epsilon."""

from __future__ import annotations

import json
from pathlib import Path

from agent.clock import NS_PER_S
from agent.config import load_config
from agent.licensing import catalogue, inbox
from agent.licensing.desk import LicensingDesk
from agent.pipeline.ingest import IngestWriter
from agent.pipeline.release import WindowReleaser
from agent.privacy.sampler import DeterministicBitSource, discrete_laplace
from agent.store import Store
from tests.agent.test_sales_release import POS, basket
from tests.conftest import BASE_CONFIG, ManualClock
from tests.licensing_kit import encode, licensing_section, signed_query

KINDS = ("category_shares_by_month", "basket_value_bins")


def test_category_baskets_and_value_bins_are_bounded_and_noised(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "agent.toml"
    base = BASE_CONFIG.format(port=1883).replace(
        "[privacy.footfall_door]", '[privacy]\nlifetime_epsilon_per_window = "2"\n\n[privacy.footfall_door]'
    )
    path.write_text(base + POS + licensing_section(kinds=KINDS))
    config = load_config(path, drivers={})
    assert config.pos is not None and config.licensing is not None
    store = Store(config.db_path)
    writer = IngestWriter(store, clock, categorize=config.pos.categorize)
    writer.start()
    sink = writer.sink_for("till")
    clock.advance(60)
    sink.emit(basket("r1", ("Croissant", "", "", 2, 240), ("Milk", "MLK-1", "", 1, 99)))  # 339: bakery, dairy
    sink.emit(basket("r2", ("Fireworks", "", "", 1, 5000)))  # other, clamped to 1000
    sink.emit(basket("r3", ("Apples", "", "Produce", 3, 300)))
    sink.emit(basket("r4", ("Croissant", "", "", 1, -120), kind="refund"))  # not a sale
    assert sink.flush()
    writer.stop()
    releaser = WindowReleaser(config, store, clock)
    clock.advance(15 * 24 * 3600 + 121)  # the rest of November, so the whole month is released
    assert releaser.tick() == 15 * 24
    later = clock.wall_ns() + 3600 * NS_PER_S
    for message in (
        signed_query(later, kind="category_shares_by_month", params={"month": "2025-11"}),
        signed_query(later, kind="basket_value_bins"),
    ):
        assert inbox.receive(store, config.coop, config.licensing.coop_public_key, encode(message), clock.wall_ns())
    desk = LicensingDesk(config, store, clock, releaser.journal, bits=DeterministicBitSource(b"pos"))
    assert desk.tick() == 2
    rows = (
        store.conn()
        .execute("SELECT payload FROM outbox WHERE topic LIKE '%/licensing/answers' ORDER BY seq")
        .fetchall()
    )
    shares, bins = (json.loads(p) for (p,) in rows)
    replay = DeterministicBitSource(b"pos")
    # Baskets per category: one basket touches at most max_categories = 2 of them, so L1 = 2 and scale 2/(1/2).
    noise = discrete_laplace(4, 1, 4, replay)
    assert shares["privacy"]["l1_sensitivity"] == 2
    assert shares["values"] == {
        c: 1 + int(n) for c, n in zip(("bakery", "dairy", "produce", "other"), noise, strict=True)
    }
    noise = discrete_laplace(2, 1, len(catalogue.BIN_KEYS), replay)  # one basket is in one bin: L1 = 1
    truth = {"0-499": 2, "1000-1999": 1}
    assert bins["values"] == {k: truth.get(k, 0) + int(n) for k, n in zip(catalogue.BIN_KEYS, noise, strict=True)}
    assert bins["privacy"]["l1_sensitivity"] == 1
