"""Window release: noise drawn once, ledger + spend + outbox in one transaction, budget enforced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.clock import NS_PER_S
from agent.config import AgentConfig
from agent.errors import PrivacyError
from agent.pipeline.release import WindowReleaser
from agent.privacy.ledger import verify_chain
from agent.privacy.sampler import DeterministicBitSource, discrete_laplace
from agent.store import Store
from agent.store.migrations import MIGRATIONS
from tests.conftest import T0_NS, ManualClock

HOUR = 3600 * NS_PER_S


def add_events(store: Store, rows: list[tuple[int, str, int, int]]) -> None:
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO events (boot_id, mono_ns, wall_ns, synced, driver, door, entries, exits)"
            " VALUES ('b', 0, ?, 1, 'test', ?, ?, ?)",
            rows,
        )


def outbox(store: Store) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(p) for (p,) in store.conn().execute("SELECT payload FROM outbox ORDER BY seq")]


def test_released_values_are_truth_plus_one_batch_of_noise(config: AgentConfig, clock: ManualClock) -> None:
    store = Store(config.db_path)
    add_events(
        store,
        [
            (T0_NS + 60 * NS_PER_S, "front", 3, 1),
            (T0_NS + 120 * NS_PER_S, "front", 2, 0),
            (T0_NS + 90 * NS_PER_S, "back", 0, 4),
            (T0_NS + HOUR + 5, "front", 100, 100),
        ],
    )
    releaser = WindowReleaser(config, store, clock, bits=DeterministicBitSource(b"seed-1"))
    clock.advance(3600 + 121)
    assert releaser.tick() == 1
    replay = DeterministicBitSource(b"seed-1")  # the same bits, drawn in the same order: doors, then the total
    door_noise = discrete_laplace(2, 1, 4, replay).reshape(2, 2)
    total_noise = discrete_laplace(2, 1, 2, replay)
    messages = {m.get("door", "all"): m for m in outbox(store)}
    assert messages["front"]["values"] == {"entries": 5 + int(door_noise[0, 0]), "exits": 1 + int(door_noise[0, 1])}
    assert messages["back"]["values"] == {"entries": 0 + int(door_noise[1, 0]), "exits": 4 + int(door_noise[1, 1])}
    assert messages["all"]["values"] == {"entries": 5 + int(total_noise[0]), "exits": 5 + int(total_noise[1])}
    assert messages["front"]["privacy"]["epsilon"] == 0.5 and messages["front"]["privacy"]["sensitivity"] == 1
    assert messages["all"]["schema"] == "shopkeeper.footfall-store.v1"


def test_every_door_is_released_every_window_even_with_no_events(config: AgentConfig, clock: ManualClock) -> None:
    store = Store(config.db_path)
    releaser = WindowReleaser(config, store, clock)
    clock.advance(3 * 3600 + 121)
    assert releaser.tick() == 3
    messages = outbox(store)
    assert [(m["window"]["start"][11:13], m.get("door", "all")) for m in messages] == [
        (h, d) for h in ("00", "01", "02") for d in ("front", "back", "all")
    ]
    assert [m["seq"] for m in messages] == list(range(1, 10))
    for schema in ("shopkeeper.footfall-door.v1", "shopkeeper.footfall-store.v1"):
        shapes = {json.dumps(sorted(m)) + json.dumps(sorted(m["privacy"])) for m in messages if m["schema"] == schema}
        assert len(shapes) == 1, "every payload of a stream has the same shape"


def test_window_waits_for_grace(config: AgentConfig, clock: ManualClock) -> None:
    releaser = WindowReleaser(config, Store(config.db_path), clock)
    clock.advance(3600 + 119)
    assert releaser.tick() == 0
    clock.advance(2)
    assert releaser.tick() == 1


def test_unsynchronised_clock_holds_release(config: AgentConfig, clock: ManualClock) -> None:
    releaser = WindowReleaser(config, Store(config.db_path), clock)
    clock.is_synced = False
    clock.advance(5 * 3600)
    assert releaser.tick() == 0
    clock.is_synced = True
    assert releaser.tick() == 4


def test_restart_never_redraws_a_released_window(config: AgentConfig, clock: ManualClock) -> None:
    store = Store(config.db_path)
    releaser = WindowReleaser(config, store, clock)
    clock.advance(3600 + 121)
    assert releaser.tick() == 1
    before = outbox(store)
    store.close()
    reopened = Store(config.db_path)
    again = WindowReleaser(config, reopened, clock)
    assert again.tick() == 0
    again.release_window(T0_NS)  # a forced second release of the same window changes nothing
    assert outbox(reopened) == before
    assert reopened.conn().execute("SELECT count(*) FROM privacy_spend").fetchone()[0] == 2  # door + total


def test_over_budget_window_is_refused_and_nothing_written(config: AgentConfig, clock: ManualClock) -> None:
    store = Store(config.db_path)
    releaser = WindowReleaser(config, store, clock)
    with store.transaction() as conn:  # another stream already spent 0.75 of this window's budget of 1
        conn.execute(
            "INSERT INTO release_ledger (window_start_ns, window_end_ns, stream, noisy_values, mechanism,"
            " parameters, epsilon, sampler_version, released_wall_ns, prev_hash, hash)"
            " VALUES (?, ?, 'other', '{}', 'x', '{}', '3/4', 'v', 0, '', '')",
            (T0_NS, T0_NS + HOUR),
        )
        conn.execute(
            "INSERT INTO privacy_spend (window_start_ns, stream, unit, epsilon, ledger_id)"
            " VALUES (?, 'other', 'door event', '3/4', 1)",
            (T0_NS,),
        )
    clock.advance(3600 + 121)
    with pytest.raises(PrivacyError, match="over the budget"):
        releaser.tick()
    assert store.conn().execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
    assert releaser.next_window_start() == T0_NS


def test_ledger_chain_verifies_and_detects_an_edit(config: AgentConfig, clock: ManualClock) -> None:
    store = Store(config.db_path)
    releaser = WindowReleaser(config, store, clock)
    clock.advance(4 * 3600)
    assert releaser.tick() == 3
    assert verify_chain(store.conn()) == []
    row = (
        store.conn()
        .execute(
            "SELECT id, noisy_values FROM release_ledger WHERE stream = 'footfall_door' ORDER BY id LIMIT 1 OFFSET 1"
        )
        .fetchone()
    )
    edited = json.loads(row[1])
    edited["front"]["entries"] += 1
    store.conn().execute("UPDATE release_ledger SET noisy_values = ? WHERE id = ?", (json.dumps(edited), row[0]))
    problems = verify_chain(store.conn())
    assert any(f"ledger row {row[0]}" in p and "edited" in p for p in problems)


def test_each_event_counts_in_exactly_one_window(config: AgentConfig, clock: ManualClock) -> None:
    store = Store(config.db_path)
    releaser = WindowReleaser(config, store, clock)
    # One event in the first window, one in the next, and one stamped before the first open window
    # (a reading that arrived after its window was closed): it counts late, in the oldest open window.
    add_events(store, [(T0_NS + 5, "front", 1, 0), (T0_NS + HOUR, "front", 10, 0), (T0_NS - 1, "back", 100, 0)])
    releaser.settle_event_times()
    first = releaser.aggregate.door_counts(T0_NS, T0_NS + HOUR)
    second = releaser.aggregate.door_counts(T0_NS + HOUR, T0_NS + 2 * HOUR)
    assert first.tolist() == [[1, 0], [100, 0]] and second.tolist() == [[10, 0], [0, 0]]
    assert store.counters()["events_counted_late"] == 1


def test_backward_clock_jump_neither_loses_nor_double_counts(config: AgentConfig, clock: ManualClock) -> None:
    store = Store(config.db_path)
    releaser = WindowReleaser(config, store, clock)
    clock.advance(2 * 3600 + 121)
    assert releaser.tick() == 2  # windows 00:00 and 01:00 are out
    # The wall clock steps back an hour: new readings carry times inside released windows.
    add_events(store, [(T0_NS + HOUR + 60 * NS_PER_S, "front", 3, 2)])
    clock.advance(3600)
    assert releaser.tick() == 1  # window 02:00
    released = [
        json.loads(v)
        for (v,) in store.conn().execute(
            "SELECT noisy_values FROM release_ledger WHERE stream = 'footfall_door' ORDER BY window_start_ns"
        )
    ]
    assert len(released) == 3
    assert store.conn().execute("SELECT window_ns FROM events").fetchall() == [(T0_NS + 2 * HOUR,)]


def test_sqlite_is_wal_with_full_sync(config: AgentConfig) -> None:
    conn = Store(config.db_path).conn()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_migrations_are_recorded(tmp_path: Path) -> None:
    store = Store(tmp_path / "x.db")
    names = [r[0] for r in store.conn().execute("SELECT name FROM _migrations")]
    assert names == [name for name, _step in MIGRATIONS] and names[0] == "0001_core"
    assert names == sorted(names), "steps run in the order they are numbered"
    Store(tmp_path / "x.db")  # a second open applies nothing again
    assert [r[0] for r in store.conn().execute("SELECT name FROM _migrations")] == names


def test_crash_inside_the_release_transaction_spends_nothing(
    config: AgentConfig, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(config.db_path)
    releaser = WindowReleaser(config, store, clock)
    clock.advance(3600 + 121)
    calls = {"n": 0}
    original = WindowReleaser._queue_message

    def crash_on_third_message(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("power cut")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(WindowReleaser, "_queue_message", crash_on_third_message)
    with pytest.raises(RuntimeError):
        releaser.tick()
    for table in ("release_ledger", "privacy_spend", "outbox"):
        assert store.conn().execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table
    monkeypatch.undo()
    assert releaser.tick() == 1
    spends = store.conn().execute("SELECT stream, count(*) FROM privacy_spend GROUP BY stream").fetchall()
    assert sorted(spends) == [("footfall_door", 1), ("footfall_store", 1)]


def test_cli_ledger_verify_fails_on_an_edited_row(
    config: AgentConfig, clock: ManualClock, capsys: pytest.CaptureFixture[str]
) -> None:
    from agent.cli import main

    store = Store(config.db_path)
    releaser = WindowReleaser(config, store, clock)
    clock.advance(2 * 3600 + 121)
    releaser.tick()
    assert main(["ledger", "verify", str(config.path)]) == 0
    store.conn().execute("UPDATE release_ledger SET epsilon = '1' WHERE id = 1")
    assert main(["ledger", "verify", str(config.path)]) == 1
    assert "row 1" in capsys.readouterr().out
    assert main(["ledger", str(config.path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["stream"] for r in rows} == {"footfall_door", "footfall_store"}


def test_every_payload_says_what_one_unit_costs_in_its_window_over_all_streams(
    config: AgentConfig, clock: ManualClock
) -> None:
    """The per-stream epsilon (0.5) is not the whole cost: a door event is in both footfall streams."""
    store = Store(config.db_path)
    add_events(store, [(T0_NS + 60 * NS_PER_S, "front", 1, 0)])
    releaser = WindowReleaser(config, store, clock)
    clock.advance(3600 + 121)
    assert releaser.tick() == 1
    messages = outbox(store)
    assert {m["privacy"]["epsilon"] for m in messages} == {0.5}
    assert {m["privacy"]["epsilon_window_total"] for m in messages} == {1.0}
    assert {m["privacy"]["rho_window_total"] for m in messages} == {None}
