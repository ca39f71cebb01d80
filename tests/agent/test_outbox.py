"""The outbox on its own: batches oldest first, accept a burst, reject with capped backoff, per-topic hold, prune."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from agent.clock import NS_PER_S
from agent.store import Store, outbox
from agent.store.migrations import MIGRATIONS

DOOR = "coop/v1/riverside/store-0042/t1/footfall/hourly"
TOTAL = "coop/v1/riverside/store-0042/t1/footfall-total/hourly"
NOW = 1_763_251_200 * NS_PER_S
NOT_AUTHORIZED = (0x87, "Not authorized")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "outbox.db")


def ledger_row(conn: sqlite3.Connection) -> int:
    cursor = conn.execute(
        "INSERT INTO release_ledger (window_start_ns, window_end_ns, stream, noisy_values, mechanism, parameters,"
        " epsilon, sampler_version, released_wall_ns, prev_hash, hash)"
        " VALUES (?, 0, 'test', '{}', 'discrete_laplace', '{}', '1/2', 'test', 0, '', '')",
        (conn.execute("SELECT count(*) FROM release_ledger").fetchone()[0],),
    )
    return int(cursor.lastrowid or 0)


def add(store: Store, *topics: str, late: bool = False) -> list[int]:
    """One outbox row per topic, in the given order, as the release writes them."""
    seqs = []
    with store.transaction() as conn:
        ledger_id = ledger_row(conn)
        for i, topic in enumerate(topics):
            seq = outbox.enqueue(conn, f"id-{topic}-{ledger_id}-{i}", topic, 0, ledger_id, NOW)
            outbox.set_payload(conn, seq, {"seq": seq, "late": late})
            seqs.append(seq)
    return seqs


def batch(store: Store, now_ns: int = NOW, limit: int = 100, exclude: tuple[int, ...] = ()) -> list[int]:
    return [row.seq for row in outbox.next_batch(store.conn(), limit, now_ns, exclude)]


def reject(store: Store, seq: int, now_ns: int = NOW, reason: tuple[int, str] = NOT_AUTHORIZED) -> int:
    with store.transaction() as conn:
        return outbox.reject(conn, seq, *reason, now_ns, base_s=1.0, cap_s=8.0)


def test_enqueue_stores_the_payload_and_its_late_flag(store: Store) -> None:
    (on_time,) = add(store, DOOR)
    (late,) = add(store, TOTAL, late=True)
    rows = {row.seq: row for row in outbox.next_batch(store.conn(), 10, NOW)}
    assert json.loads(rows[on_time].payload) == {"seq": on_time, "late": False} and rows[on_time].late is False
    assert json.loads(rows[late].payload) == {"seq": late, "late": True} and rows[late].late is True


def test_batch_is_oldest_first_limited_and_leaves_out_rows_with_the_client(store: Store) -> None:
    seqs = add(store, DOOR, TOTAL, DOOR, TOTAL, DOOR)
    assert batch(store) == seqs
    assert batch(store, limit=2) == seqs[:2]
    assert batch(store, exclude=(seqs[0], seqs[2])) == [seqs[1], seqs[3], seqs[4]]
    assert batch(store, limit=0) == []


def test_accept_marks_a_burst_delivered_once(store: Store) -> None:
    seqs = add(store, DOOR, TOTAL, DOOR)
    with store.transaction() as conn:
        assert outbox.accept(conn, seqs[:2], NOW + 5) == 2
        assert outbox.accept(conn, seqs[:1], NOW + 6) == 0  # a duplicate PUBACK marks nothing again
    assert outbox.pending(store.conn()) == (1, NOW)
    assert outbox.delivered(store.conn()) == (2, NOW + 5)
    assert batch(store) == [seqs[2]]


def test_bursts_and_exclusions_beyond_sqlites_variable_limit_are_one_statement_each(store: Store) -> None:
    """A list of seqs is bound as one JSON parameter, so its length never meets SQLite's 999-variable limit."""
    seqs = add(store, *[DOOR, TOTAL] * 1500)
    store.conn().setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)  # the oldest SQLite's default
    assert batch(store, limit=5, exclude=tuple(seqs[:2500])) == seqs[2500:2505]
    with store.transaction() as conn:
        assert outbox.accept(conn, seqs[:2999] + seqs[:10], NOW + 5) == 2999  # duplicates mark nothing twice
    assert outbox.pending(store.conn()) == (1, NOW) and batch(store) == [seqs[2999]]


def test_an_accepted_burst_is_one_transaction(store: Store) -> None:
    seqs = add(store, DOOR, TOTAL)
    with pytest.raises(RuntimeError), store.transaction() as conn:
        outbox.accept(conn, seqs, NOW)
        raise RuntimeError("power cut before COMMIT")
    assert outbox.pending(store.conn())[0] == 2


def test_a_refused_row_stays_pending_with_its_reason_and_is_counted(store: Store) -> None:
    (seq,) = add(store, DOOR)
    assert reject(store, seq) == 1
    assert outbox.pending(store.conn())[0] == 1
    (refusal,) = outbox.rejections(store.conn())
    assert (refusal.topic, refusal.code, refusal.reason) == (DOOR, 0x87, "Not authorized")
    assert (refusal.refused_rows, refusal.held_back, refusal.attempts) == (1, 1, 1)
    assert refusal.since_wall_ns == NOW and refusal.next_attempt_wall_ns == NOW + 1 * NS_PER_S
    assert store.counters()[outbox.REJECTED_COUNTER + "Not authorized"] == 1


def test_backoff_doubles_per_refusal_up_to_the_cap() -> None:
    delays = [outbox.retry_delay_ns(n, base_s=1.0, cap_s=8.0) / NS_PER_S for n in range(1, 7)]
    assert delays == [1, 2, 4, 8, 8, 8]
    assert outbox.retry_delay_ns(10_000, base_s=1.0, cap_s=8.0) == 8 * NS_PER_S  # no overflow


def test_a_refused_row_waits_for_its_backoff_and_holds_back_its_topic_only(store: Store) -> None:
    door1, total1, door2, total2 = add(store, DOOR, TOTAL, DOOR, TOTAL)
    reject(store, door1)
    # door2 never went out, yet it waits behind door1: sending it would let it overtake door1.
    assert batch(store) == [total1, total2]
    (refusal,) = outbox.rejections(store.conn())
    assert refusal.held_back == 2 and refusal.refused_rows == 1
    # Once the backoff has passed, only the refused row goes again: one probe, not the whole topic.
    assert batch(store, NOW + 1 * NS_PER_S) == [door1, total1, total2]
    reject(store, door1, NOW + 1 * NS_PER_S)
    assert batch(store, NOW + 2 * NS_PER_S) == [total1, total2]  # second refusal: 2 s this time
    assert batch(store, NOW + 3 * NS_PER_S) == [door1, total1, total2]
    with store.transaction() as conn:
        outbox.accept(conn, [door1], NOW + 3 * NS_PER_S)
    assert batch(store, NOW + 3 * NS_PER_S) == [total1, door2, total2]
    assert outbox.rejections(store.conn()) == []


def test_rows_refused_in_one_burst_go_again_one_at_a_time_oldest_first(store: Store) -> None:
    door1, door2, door3 = add(store, DOOR, DOOR, DOOR)
    for seq in (door1, door2, door3):
        reject(store, seq)
    assert batch(store, NOW + NS_PER_S) == [door1]
    with store.transaction() as conn:
        outbox.accept(conn, [door1], NOW + NS_PER_S)
    # The topic is accepted again, so door2 need not sit out its own backoff; door3 still waits behind it.
    assert batch(store, NOW + NS_PER_S) == [door2]
    with store.transaction() as conn:
        outbox.accept(conn, [door2], NOW + NS_PER_S)
    assert batch(store, NOW + NS_PER_S) == [door3]


def test_a_wall_clock_step_back_cannot_hold_a_refused_row_past_the_cap(store: Store) -> None:
    (seq,) = add(store, DOOR)
    reject(store, seq, NOW)
    an_hour_earlier = NOW - 3600 * NS_PER_S
    assert [r.seq for r in outbox.next_batch(store.conn(), 10, an_hour_earlier, cap_s=8.0)] == [seq]


def test_the_latest_reason_is_reported_per_topic(store: Store) -> None:
    door1, door2 = add(store, DOOR, DOOR)
    reject(store, door1, NOW)
    reject(store, door2, NOW + 1, reason=(0x97, "Quota exceeded"))
    (refusal,) = outbox.rejections(store.conn())
    assert (refusal.code, refusal.reason, refusal.refused_rows, refusal.attempts) == (0x97, "Quota exceeded", 2, 1)
    assert store.counters()[outbox.REJECTED_COUNTER + "Quota exceeded"] == 1


def test_a_refusal_of_a_delivered_row_is_counted_but_holds_nothing(store: Store) -> None:
    (seq,) = add(store, DOOR)
    with store.transaction() as conn:
        outbox.accept(conn, [seq], NOW)
    assert reject(store, seq) == 0
    assert outbox.rejections(store.conn()) == [] and outbox.pending(store.conn())[0] == 0


def test_prune_deletes_only_delivered_rows_released_before_the_cut(store: Store) -> None:
    old_done, old_pending = add(store, DOOR, TOTAL)
    with store.transaction() as conn:
        outbox.accept(conn, [old_done], NOW)
    (new_done,) = add(store, DOOR)
    with store.transaction() as conn:
        conn.execute("UPDATE outbox SET created_wall_ns = ? WHERE seq = ?", (NOW + 10, new_done))
        outbox.accept(conn, [new_done], NOW + 10)
        assert outbox.prune_delivered(conn, NOW + 5) == 1
    remaining = [seq for (seq,) in store.conn().execute("SELECT seq FROM outbox ORDER BY seq")]
    assert remaining == [old_pending, new_done]


def test_late_is_more_than_twice_the_grace_plus_a_minute_after_the_window_end() -> None:
    end, grace = NOW, 120 * NS_PER_S
    assert not outbox.is_late(end, end + grace, grace)  # the normal release time
    assert not outbox.is_late(end, end + 2 * grace + 60 * NS_PER_S, grace)
    assert outbox.is_late(end, end + 2 * grace + 60 * NS_PER_S + 1, grace)


def test_the_migration_copies_late_from_payloads_written_before_it(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    db = sqlite_utils.Database(conn)
    conn.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_wall_ns INTEGER)")
    names = [name for name, _step in MIGRATIONS]
    before = names[: names.index("0009_outbox_rejections")]
    for name, step in MIGRATIONS[: len(before)]:
        step(db)
        conn.execute("INSERT INTO _migrations VALUES (?, 0)", (name,))
    ledger_id = ledger_row(conn)
    for i, late in enumerate((True, False)):
        conn.execute(
            "INSERT INTO outbox (msg_id, topic, payload, window_start_ns, ledger_id, created_wall_ns)"
            " VALUES (?, ?, ?, 0, ?, 0)",
            (f"m{i}", DOOR, json.dumps({"late": late}), ledger_id),
        )
    conn.close()
    store = Store(path)
    assert [row.late for row in outbox.next_batch(store.conn(), 10, NOW)] == [True, False]


def test_a_journalled_row_is_restored_pending_with_its_seq_and_its_late_flag(store: Store) -> None:
    (seq,) = add(store, DOOR, late=True)
    with store.transaction() as conn:
        ledger_id = int(conn.execute("SELECT ledger_id FROM outbox WHERE seq = ?", (seq,)).fetchone()[0])
        (message,) = outbox.messages_of(conn, ledger_id)
        outbox.accept(conn, [seq], NOW)
        assert not outbox.restore(conn, message, ledger_id)  # seq and msg_id taken: nothing overwritten
        conn.execute("DELETE FROM outbox WHERE seq = ?", (seq,))  # what a rolled-back database lost
        assert outbox.restore(conn, message, ledger_id)
    (row,) = outbox.next_batch(store.conn(), 10, NOW)
    assert (row.seq, row.msg_id, row.late) == (seq, message["msg_id"], True)
