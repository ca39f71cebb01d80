"""Every hostile message of the catalogue (tests/hub/hostile.py) is refused with its one reason, and storing
them never raises, never stores a summary, and keeps only a bounded number aside per store."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from agent.contract import MAX_PAYLOAD_BYTES
from devtools.loadgen import synthetic_summary
from hub.contract import Rejected, Summary, parse_message
from hub.db import Connection, Database
from hub.refusals import KEEP_ROWS, health_text, misbehaving
from hub.storage import counters, store_batch
from hub.wire import Refusal, decode_payload, nesting_depth
from tests.hub.hostile import Hostile, hostile_messages, retained_flood

T0 = 1_763_283_600  # 2025-11-16T09:00:00Z
VICTIM_ID = "riverside/shop-a/footfall/hourly/2025-11-16T09:00:00Z/front"
NOW = float(T0 + 7200)


def test_the_catalogue_has_thirty_kinds_the_hub_refuses() -> None:
    assert len(HUB_REFUSES) >= 30
    assert len({h.name for h in HUB_REFUSES}) == len(HUB_REFUSES)


HUB_REFUSES = [h for h in hostile_messages("store-x", VICTIM_ID, T0, 3600) if h.reason is not None]


@pytest.mark.parametrize("hostile", HUB_REFUSES, ids=lambda h: h.name)
def test_each_hostile_message_is_refused_with_its_reason(hostile: Hostile) -> None:
    """(Those the broker's ACL refuses are checked in tests/e2e/test_hostile_coop.py.)"""
    parsed = parse_message("riverside", hostile.topic, hostile.payload, now=NOW)
    assert isinstance(parsed, Rejected), parsed
    assert (parsed.reason, parsed.store) == (hostile.reason, "store-x")
    assert len(parsed.payload) <= MAX_PAYLOAD_BYTES + 1


def test_the_unmutated_base_message_is_accepted() -> None:
    topic, payload = synthetic_summary("riverside", "store-x", "front", T0, 1, 7)
    assert isinstance(parse_message("riverside", topic, payload.encode(), now=NOW), Summary)


def test_depth_is_measured_without_recursion_and_strings_do_not_count() -> None:
    assert nesting_depth('{"a": "[[[[[[[[[[", "b": [{"c": "\\"]]]]"}]}') == 3
    assert nesting_depth("[" * 100_000 + "]" * 100_000) == 100_000
    with pytest.raises(Refusal, match="nested too deep"):
        decode_payload(b"[" * 7 + b"]" * 7)
    assert decode_payload(b"[" * 6 + b"]" * 6) == [[[[[[]]]]]]


def test_a_window_a_day_ahead_of_the_hubs_clock_is_the_limit() -> None:
    topic, payload = synthetic_summary("riverside", "s1", "front", int(NOW) + 86400 - 3600, 1, 7)
    assert isinstance(parse_message("riverside", topic, payload.encode(), now=NOW), Summary)
    topic, payload = synthetic_summary("riverside", "s1", "front", int(NOW) + 86400, 1, 7)
    parsed = parse_message("riverside", topic, payload.encode(), now=NOW)
    assert isinstance(parsed, Rejected) and parsed.reason == "window ends more than a day after the hub's clock"


def test_ids_are_unique_per_store_so_one_store_cannot_shadow_another(conn: Connection) -> None:
    a_topic, a_payload = synthetic_summary("riverside", "shop-a", "front", T0, 1, 7)
    b_topic, b_payload = synthetic_summary("riverside", "shop-b", "front", T0, 1, 9)
    a = parse_message("riverside", a_topic, a_payload.encode(), now=NOW)
    b = parse_message("riverside", b_topic, b_payload.encode(), now=NOW)
    assert isinstance(a, Summary) and isinstance(b, Summary)
    squat = dataclasses.replace(b, msg_id=a.msg_id)  # the id check aside, the key alone must keep them apart
    assert store_batch(conn, "w1", [squat], now=NOW).stored == 1
    assert store_batch(conn, "w1", [a], now=NOW).stored == 1
    assert store_batch(conn, "w1", [a], now=NOW).duplicates == 1  # redelivery: still once
    assert conn.query("SELECT store FROM summaries WHERE msg_id = ? ORDER BY store", (a.msg_id,)) == [
        ("shop-a",),
        ("shop-b",),
    ]


def test_refusals_are_all_counted_but_kept_only_within_the_stores_quota(conn: Connection) -> None:
    flood = [
        parse_message("riverside", h.topic, b"x" * 200_000, size=200_000, now=NOW)
        for h in retained_flood("store-x", 3 * KEEP_ROWS)
    ]
    result = store_batch(conn, "w1", flood, now=NOW)
    assert result.rejected == 3 * KEEP_ROWS
    kept, kept_bytes = conn.query("SELECT COUNT(*), SUM(kept_bytes) FROM rejected WHERE store = 'store-x'")[0]
    assert int(kept) <= KEEP_ROWS and int(kept_bytes) <= 1024 * 1024
    summary = conn.query("SELECT reason, refused, refused_bytes FROM rejected_summary WHERE store = 'store-x'")
    assert summary == [("payload too large", 3 * KEEP_ROWS, 3 * KEEP_ROWS * 200_000)]
    assert counters(conn)["rejected"] == 3 * KEEP_ROWS
    # An honest store's first refusal is still kept: the quota is per store.
    other = parse_message("riverside", "coop/v1/riverside/shop-a/t1/footfall/hourly", b"nope", now=NOW)
    store_batch(conn, "w1", [other], now=NOW)
    assert conn.query("SELECT COUNT(*) FROM rejected WHERE store = 'shop-a'")[0][0] == 1


def test_healthz_names_the_misbehaving_store_and_its_main_reason(conn: Connection) -> None:
    assert health_text(conn, NOW) == "ok\n"
    topic, payload = synthetic_summary("riverside", "store-x", "front", T0, 1, 7)
    doc = json.loads(payload)
    doc["values"]["entries"] = 10**8
    bad = [parse_message("riverside", topic, json.dumps(doc).encode(), now=NOW) for _ in range(120)]
    bad.append(parse_message("riverside", topic, b"[]", now=NOW))
    store_batch(conn, "w1", bad, now=NOW)
    assert misbehaving(conn, NOW) == [
        "store-x: 121 messages refused in the last 10 min: values.entries out of range (and 1 other reason(s))"
    ]
    assert health_text(conn, NOW).startswith("degraded")
    assert health_text(conn, NOW + 3600) == "ok\n"  # while it lasts


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migration_keys_ids_per_store_keeps_rows_and_quarantines_out_of_bounds_ones(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str
) -> None:
    import hub.db

    url = str(tmp_path / "old.db") if backend == "sqlite" else request.getfixturevalue("postgres_dsn")
    database = Database(url)
    old = hub.db.MIGRATIONS[:3]
    hub.db.MIGRATIONS, saved = old, hub.db.MIGRATIONS
    try:
        database.migrate()
    finally:
        hub.db.MIGRATIONS = saved
    conn = database.connect()
    columns = (
        "msg_id, schema_id, store, stream, tier, item, seq, window_start, window_start_s, window_seconds,"
        " mechanism, entries, exits, noise_variance, payload, received_at, worker"
    )
    row = "?, 's', ?, 'footfall/hourly', 't1', 'front', ?, 'w', ?, 3600, 'discrete_laplace', ?, 0, 1.0, ?, 0, 'w'"
    year_9999 = 253370764800
    rows = [
        ("id-1", "shop-a", 1, T0, 5, "{}"),
        ("id-2", "shop-b", 2, T0, 2**62, "{}"),
        ("id-3", "shop-b", 3, year_9999, 5, "{}"),
    ]
    conn.executemany(f"INSERT INTO summaries ({columns}) VALUES ({row})", rows)
    conn.execute("INSERT INTO rejected VALUES ('r1', 0, 'w', 'coop/v1/riverside/shop-b/status', 'old reason', 'x')")
    conn.execute(
        "INSERT INTO stores (store, state, connection, status_order, agent, first_seen_at, last_seen_at, last_window_s)"
        " VALUES ('shop-b', 'online', ?, 1, '', 0, 0, ?)",
        (2**62, year_9999),
    )
    assert database.migrate()[0] == "0004_ids_per_store_and_bounded_refusals"  # later migrations follow it
    assert conn.query("SELECT store, msg_id FROM summaries") == [("shop-a", "id-1")]
    conn.execute(  # the key is (store, msg_id) now: the same id under another store is another row
        f"INSERT INTO summaries ({columns}) VALUES ({row})", ("id-1", "shop-b", 4, T0, 5, "{}")
    )
    assert conn.query("SELECT COUNT(*) FROM summaries WHERE msg_id = 'id-1'") == [(2,)]
    assert {r[0] for r in conn.query("SELECT detail FROM rejected WHERE worker = 'migration'")} == {"id-2", "id-3"}
    assert conn.query("SELECT store, reason, refused FROM rejected_summary") == [("shop-b", "old reason", 1)]
    assert conn.query("SELECT connection, last_window_s FROM stores") == [(0, None)]
    conn.close()
