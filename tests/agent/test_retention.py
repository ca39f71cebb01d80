"""Storage bounds: released raw data goes oldest first and is counted; unsent summaries never go."""

from __future__ import annotations

from agent.clock import NS_PER_S
from agent.config import AgentConfig
from agent.pipeline.release import WindowReleaser
from agent.pipeline.retention import Retention
from agent.store import Store
from tests.conftest import T0_NS, ManualClock

HOUR = 3600 * NS_PER_S


def fill(store: Store, start_ns: int, hours: int, per_hour: int) -> None:
    rows = [
        ("b", 0, start_ns + h * HOUR + i * NS_PER_S, 1, "d", "front", 1, 0)
        for h in range(hours)
        for i in range(per_hour)
    ]
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO events (boot_id, mono_ns, wall_ns, synced, driver, door, entries, exits)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


def test_tiny_bound_drops_released_raw_oldest_first_and_keeps_unsent(config: AgentConfig, clock: ManualClock) -> None:
    store = Store(config.db_path)
    releaser = WindowReleaser(config, store, clock)
    fill(store, T0_NS, hours=6, per_hour=2000)
    clock.advance(4 * 3600 + 121)
    assert releaser.tick() == 4  # windows 00..03 released (and unsent: no broker); 04, 05 still open
    outbox_before = store.conn().execute("SELECT count(*) FROM outbox").fetchone()[0]
    retention = Retention(store, clock, max_age_s=365 * 86400, max_bytes=200_000)
    report = retention.run()
    assert report.dropped_size > 0
    remaining = store.conn().execute("SELECT min(window_ns), count(*) FROM events").fetchone()
    kept_windows = {w for (w,) in store.conn().execute("SELECT DISTINCT window_ns FROM events")}
    # Everything of the open windows (04:00, 05:00) stays, and what went was the oldest released data.
    assert {T0_NS + 4 * HOUR, T0_NS + 5 * HOUR} <= kept_windows
    dropped_ids = set(range(1, 12001)) - {i for (i,) in store.conn().execute("SELECT id FROM events")}
    assert dropped_ids == set(range(1, len(dropped_ids) + 1)), "oldest first"
    assert remaining[1] >= 4000
    assert store.conn().execute("SELECT count(*) FROM outbox").fetchone()[0] == outbox_before == 12
    assert store.counters()["dropped_raw_size"] == report.dropped_size
    assert report.over_bound, "only unreleased raw data and unsent summaries are left: the agent says so"
    assert store.get_state("disk_bound_reached") == "1"


def test_age_bound_drops_only_released_raw(config: AgentConfig, clock: ManualClock) -> None:
    store = Store(config.db_path)
    releaser = WindowReleaser(config, store, clock)
    fill(store, T0_NS, hours=3, per_hour=10)
    clock.advance(2 * 3600 + 121)
    releaser.tick()  # 00:00 and 01:00 released
    clock.advance(40 * 86400)
    report = Retention(store, clock, max_age_s=30 * 86400, max_bytes=1 << 40).run()
    assert report.dropped_age == 20
    assert (
        store.conn().execute("SELECT count(*) FROM events WHERE window_ns = ?", (T0_NS + 2 * HOUR,)).fetchone()[0] == 10
    )
    assert store.counters()["dropped_raw_age"] == 20
    assert not report.over_bound


def test_a_pos_record_is_counted_once_for_life_even_after_retention_dropped_it(
    config: AgentConfig, clock: ManualClock
) -> None:
    """A webhook replayed (or a payment re-sent on a refund) 40 days later adds no sale."""
    from agent.driver_api import Basket, BasketLine
    from agent.pipeline.ingest import IngestWriter

    store = Store(config.db_path)
    ingest = IngestWriter(store, clock)
    ingest.start()
    sale = Basket("sq-payment-1", (BasketLine("Rye loaf", 1, 450, 450),), 450)
    ingest.submit("square", sale)
    assert ingest.flush()
    releaser = WindowReleaser(config, store, clock)
    clock.advance(40 * 86400)
    releaser.tick()
    Retention(store, clock, max_age_s=30 * 86400, max_bytes=10**9).run()
    assert store.conn().execute("SELECT count(*) FROM baskets").fetchone()[0] == 0, "raw basket dropped by age"
    ingest.submit("square", sale)
    ingest.submit("square", Basket("sq-payment-2", (BasketLine("Rye loaf", 1, 450, 450),), 450))
    assert ingest.flush()
    ingest.stop()
    ids = [r[0] for r in store.conn().execute("SELECT source_id FROM baskets")]
    assert ids == ["sq-payment-2"]
    assert ingest.stats()["duplicate_baskets"] == 1
