"""The per-reading fast path: a stateless DoorCount goes in as its events row, in order with every
other reading, counted once, and a bad one is still refused alone; door rows go in 100 per statement."""

from __future__ import annotations

from pathlib import Path

from agent.driver_api import DoorCount, PresenceChange
from agent.pipeline.ingest import IngestWriter
from agent.store import Store, driver_state, raw_events
from tests.conftest import ManualClock


def test_door_counts_with_and_without_state_are_stored_in_the_order_they_came(
    tmp_path: Path, clock: ManualClock
) -> None:
    store = Store(tmp_path / "agent.db")
    writer = IngestWriter(store, clock)
    writer.start()
    for i in range(300):  # one batch mixing both paths (the writer was idle, so they gather into few commits)
        clock.advance(0.001)
        state = {"counter": str(i)} if i % 7 == 0 else None
        assert writer.submit("front_door", DoorCount("front", i, 0), state)
        if i % 50 == 0:
            assert writer.submit("radar", PresenceChange("aisle", True))
    assert writer.submit("front_door", None, {"counter": "final"})  # state alone: not a reading
    assert writer.flush()
    rows = store.conn().execute("SELECT mono_ns, synced, driver, door, entries FROM events ORDER BY id").fetchall()
    assert [r[4] for r in rows] == list(range(300))  # ids ascend in submission order across both paths
    assert [r[0] for r in rows] == sorted(r[0] for r in rows) and len({r[0] for r in rows}) == 300
    assert {(r[1], r[2], r[3]) for r in rows} == {(1, "front_door", "front")}
    assert store.conn().execute("SELECT count(*) FROM presence_events").fetchone() == (6,)
    assert driver_state.load(store.conn(), "front_door", "counter") == "final"
    assert writer.stats()["accepted"] == 306 and writer.stats()["refused"] == {}
    writer.stop()


def test_a_door_count_out_of_range_is_refused_with_its_reason(tmp_path: Path, clock: ManualClock) -> None:
    store = Store(tmp_path / "agent.db")
    writer = IngestWriter(store, clock)
    writer.start()
    assert not writer.submit("front_door", DoorCount("front", -1, 0))
    assert not writer.submit("front_door", DoorCount("front", 2, 1.5))  # type: ignore[arg-type]
    assert not writer.submit("front_door", DoorCount("front", 10**7, 0))
    assert writer.submit("front_door", DoorCount("front", 2, 1))
    assert writer.flush()
    assert store.conn().execute("SELECT entries, exits FROM events").fetchall() == [(2, 1)]
    refused = writer.stats()["refused"]
    assert sum(refused.values()) == 3 and all("is not a count between 0 and" in r for r in refused)
    writer.stop()


def test_a_door_row_sqlite_cannot_encode_is_refused_alone_from_a_many_row_statement(
    tmp_path: Path, clock: ManualClock
) -> None:
    store = Store(tmp_path / "agent.db")
    writer = IngestWriter(store, clock)
    for i in range(250):  # queued before the writer starts: one batch, two 100-row statements and 50 more
        assert writer.submit("front_door", DoorCount("fr\udce8nt" if i == 120 else "front", 1, 0))
    writer.start()
    assert writer.flush()
    counted = store.conn().execute("SELECT count(*), sum(entries), min(door) FROM events").fetchone()
    assert counted == (249, 249, "front")
    (reason,) = writer.stats()["refused"]
    assert reason.startswith("front_door:the store cannot hold it") and writer.stats()["accepted"] == 249
    writer.stop()


def test_door_rows_are_inserted_whole_and_in_order_at_every_statement_boundary(tmp_path: Path) -> None:
    store = Store(tmp_path / "agent.db")
    per_statement = raw_events.DOOR_ROWS_PER_STATEMENT
    for n in (0, 1, per_statement - 1, per_statement, per_statement + 1, 3 * per_statement + 7):
        rows = [(f"boot-{n}", i, 10**18 + i, i % 2, "d", f"door-{i % 3}", i, 2 * i) for i in range(n)]
        with store.transaction() as conn:
            conn.execute("DELETE FROM events")
            raw_events.insert_door_counts(conn, rows)
        stored = store.conn().execute(
            "SELECT boot_id, mono_ns, wall_ns, synced, driver, door, entries, exits FROM events ORDER BY id"
        )
        assert stored.fetchall() == rows, n
