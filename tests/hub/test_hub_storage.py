"""The hub's write path and periodic tasks, run against SQLite and a real PostgreSQL alike."""

from __future__ import annotations

import json
import os
from pathlib import Path

from devtools.loadgen import shop_hour_sales, synthetic_sales, synthetic_summary
from hub.config import AlertSettings
from hub.contract import Rejected, Status, Summary, hub_validator, parse_message, summary_schemas, validator
from hub.db import Connection, _backfill_amount
from hub.early_warning import footfall_alerts, judge, liveness_alerts
from hub.queries import open_gaps, stores
from hub.storage import counters, store_batch
from hub.tasks import reconcile_gaps

T0 = 1_763_251_200  # 2025-11-16T00:00:00Z, a Sunday


def summary(store: str, hour: int, seq: int, entries: int = 10, door: str = "front") -> Summary:
    topic, payload = synthetic_summary("riverside", store, door, T0 + hour * 3600, seq, entries)
    parsed = parse_message("riverside", topic, payload.encode())
    assert isinstance(parsed, Summary), parsed
    return parsed


def sale(store: str, kind: str, category: str, value: int | None, hour: int = 0, seq: int = 1) -> Summary:
    """One t2 POS sales summary (kind "count": baskets, "revenue": revenue_cents)."""
    topic, payload = synthetic_sales("riverside", store, kind, category, T0 + hour * 3600, seq, value)
    parsed = parse_message("riverside", topic, payload.encode())
    assert isinstance(parsed, Summary), parsed
    return parsed


def status(store: str, state: str, connection: int) -> Status:
    doc = {"state": state, "connection": connection, "coop": "riverside", "store": store, "agent": "shopkeeper 0"}
    parsed = parse_message("riverside", f"coop/v1/riverside/{store}/status", json.dumps(doc).encode())
    assert isinstance(parsed, Status), parsed
    return parsed


def test_synthetic_payloads_follow_the_agents_schema() -> None:
    _topic, payload = synthetic_summary("riverside", "s1", "front", T0, 1, 5)
    assert list(validator(summary_schemas()["shopkeeper.footfall-door.v1"]).iter_errors(json.loads(payload))) == []


def test_synthetic_sales_payloads_follow_the_agents_schema() -> None:
    check = validator(summary_schemas()["shopkeeper.sales-category.v1"])
    messages = shop_hour_sales("riverside", "s1", 0, T0, 1, ("bakery", "dairy", "other"))
    assert len(messages) == 7  # 3 categories + "all" baskets, 3 revenues
    for topic, payload in messages:
        doc = json.loads(payload)
        assert list(check.iter_errors(doc)) == []
        assert topic == f"coop/v1/riverside/s1/t2/{doc['stream']}" and doc["tier"] == "t2"


def test_a_sales_category_summary_is_stored_once_with_its_key_and_value(conn: Connection) -> None:
    revenue = sale("s1", "revenue", "bakery", -120)  # noisy values may be negative
    baskets = sale("s1", "count", "all", 42, seq=2)
    assert (revenue.key, revenue.tier, revenue.stream, revenue.amount) == ("bakery", "t2", "sales-revenue/hourly", -120)
    assert (baskets.key, baskets.amount, baskets.entries) == ("all", 42, None)
    assert store_batch(conn, "w1", [revenue, baskets]).stored == 2
    again = store_batch(conn, "w2", [revenue, baskets])  # redelivered
    assert (again.stored, again.duplicates) == (0, 2)
    rows = conn.query("SELECT stream, tier, item, amount, entries FROM summaries ORDER BY stream")
    assert rows == [("sales-count/hourly", "t2", "all", 42, None), ("sales-revenue/hourly", "t2", "bakery", -120, None)]
    suppressed = sale("s1", "revenue", "dairy", None, seq=3)
    assert store_batch(conn, "w1", [suppressed]).stored == 1 and suppressed.amount is None


def test_migration_backfills_the_amount_of_sales_stored_before_it(conn: Connection) -> None:
    store_batch(conn, "w1", [sale("s1", "revenue", "bakery", 990), summary("s1", 0, 2)])
    conn.execute("UPDATE summaries SET amount = NULL")
    _backfill_amount(conn)
    assert conn.query("SELECT item, amount FROM summaries ORDER BY item") == [("bakery", 990), ("front", None)]


def test_a_redelivered_summary_is_stored_once(conn: Connection) -> None:
    first = [summary("s1", h, h + 1) for h in range(4)]
    assert store_batch(conn, "w1", first).stored == 4
    again = store_batch(conn, "w2", first[1:3])
    assert (again.stored, again.duplicates) == (0, 2)
    assert conn.query("SELECT COUNT(*) FROM summaries")[0][0] == 4
    assert counters(conn) == {"stored": 4, "duplicates": 2}


def test_invalid_payloads_are_kept_aside_with_the_reason(conn: Connection) -> None:
    bad = [
        parse_message("riverside", "coop/v1/riverside/s1/t1/footfall/hourly", b"\xff not json"),
        parse_message("riverside", "coop/v1/riverside/s1/t1/footfall/hourly", b'{"schema": "nope"}'),
        parse_message(
            "riverside",
            "coop/v1/riverside/s2/t1/footfall/hourly",
            synthetic_summary("riverside", "s1", "front", T0, 1, 5)[1].encode(),
        ),  # names another store than its topic
    ]
    assert all(isinstance(b, Rejected) for b in bad)
    result = store_batch(conn, "w1", [*bad, summary("s1", 0, 1)])
    assert (result.stored, result.rejected) == (1, 3)
    reasons = [r[0] for r in conn.query("SELECT reason FROM rejected ORDER BY reason")]
    assert "not UTF-8" in reasons and "unknown payload schema" in reasons
    assert any("do not match its topic" in r for r in reasons)
    assert counters(conn)["rejected"] == 3


def test_a_stale_will_never_overrides_a_newer_birth(conn: Connection) -> None:
    store_batch(conn, "w1", [status("s1", "online", 3)])
    store_batch(conn, "w1", [status("s1", "offline", 2)])  # a retained will of an older session, redelivered
    assert [(s["state"], s["connection"]) for s in stores(conn)] == [("online", 3)]
    store_batch(conn, "w1", [status("s1", "offline", 3)])
    assert [(s["state"], s["connection"]) for s in stores(conn)] == [("offline", 3)]
    store_batch(conn, "w1", [status("s1", "online", 4)])
    assert [(s["state"], s["connection"]) for s in stores(conn)] == [("online", 4)]


def test_sequence_gaps_open_and_close_when_filled(conn: Connection) -> None:
    store_batch(conn, "w1", [summary("s1", h, seq) for h, seq in ((0, 1), (1, 2), (4, 5), (6, 7))])
    assert reconcile_gaps(conn, "s1", 100.0) == (2, 0)
    assert [(g["first_missing"], g["last_missing"]) for g in open_gaps(conn)] == [(3, 4), (6, 6)]
    store_batch(conn, "w1", [summary("s1", 2, 3), summary("s1", 3, 4)])
    assert reconcile_gaps(conn, "s1", 200.0) == (0, 1)
    assert [(g["first_missing"], g["last_missing"]) for g in open_gaps(conn)] == [(6, 6)]
    closed = conn.query("SELECT first_missing, last_missing, closed_at FROM seq_gaps WHERE closed_at IS NOT NULL")
    assert closed == [(3, 4, 200.0)]


def test_footfall_far_below_the_seasonal_baseline_raises_one_alert(conn: Connection) -> None:
    week = 7 * 24
    history = [summary("s1", hour=9 + w * week, seq=w + 1, entries=100 + w) for w in range(4)]
    today = summary("s1", hour=9 + 4 * week, seq=5, entries=20)
    store_batch(conn, "w1", [*history, today])
    settings = AlertSettings(z=3.0, weeks=8, min_weeks=3)
    raised = footfall_alerts(conn, "riverside", settings, [today.window_start_s])
    assert len(raised) == 1
    topic, payload = raised[0]
    alert = json.loads(payload)
    assert topic == "coop/v1/riverside/_hub/t2/alerts/s1"
    assert alert["kind"] == "footfall_low" and alert["baseline"] == 101.5
    assert list(hub_validator("alert.v1.json").iter_errors(alert)) == []
    assert footfall_alerts(conn, "riverside", settings, [today.window_start_s]) == []  # raised once


def test_noise_floor_keeps_ordinary_noise_from_alerting() -> None:
    settings = AlertSettings(z=3.0, weeks=8, min_weeks=3)
    # Identical history has MAD 0; only the noise floor (scale 2: var 2q/(1-q)^2 ~ 7.9 per door) stops a 6 off alarm.
    verdict = judge(94.0, [100.0, 100.0, 100.0, 100.0], noise_variance=2 * 7.92, settings=settings)
    assert verdict is not None and verdict.mad_spread == 0 and verdict.kind is None
    assert judge(40.0, [100.0] * 4, noise_variance=2 * 7.92, settings=settings).kind == "footfall_low"  # type: ignore[union-attr]
    assert judge(40.0, [100.0] * 2, noise_variance=1.0, settings=settings) is None  # too little history


def test_an_offline_shop_is_flagged_once(conn: Connection) -> None:
    store_batch(conn, "w1", [summary("s1", 0, 1), status("s1", "offline", 1)], now=1000.0)
    first = liveness_alerts(conn, "riverside", AlertSettings(), now=1000.0)
    assert [json.loads(p)["kind"] for _t, p in first] == ["offline"]
    assert liveness_alerts(conn, "riverside", AlertSettings(), now=1000.0) == []


def test_a_new_sqlite_hub_database_is_owner_only(tmp_path: Path) -> None:
    from hub.db import Database

    old = os.umask(0o022)
    try:
        Database(str(tmp_path / "hub.db")).migrate()
    finally:
        os.umask(old)
    assert (tmp_path / "hub.db").stat().st_mode & 0o777 == 0o600
