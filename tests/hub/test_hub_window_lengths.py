"""Shops on 1-minute, 15-minute and hourly windows: the hub takes streams and lengths from the contract and the
payload, and compares shops only on the same window length (SQLite and PostgreSQL alike)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.contract import schema_files
from devtools.loadgen import synthetic_summary
from hub.benchmarks import refresh_benchmarks
from hub.config import AlertSettings, load_hub_config
from hub.contract import Rejected, Summary, parse_message, summary_schemas
from hub.dashboard_data import district_data, shop_data
from hub.db import Connection, Database
from hub.early_warning import footfall_alerts, liveness_alerts
from hub.storage import store_batch
from tests.hub.conftest import write_hub_config

T0 = 1_763_283_600  # 2025-11-16T09:00:00Z
WEEK = 7 * 86400


def summary(store: str, start: int, seq: int, window_s: int, entries: int = 10, door: str = "front") -> Summary:
    topic, payload = synthetic_summary("riverside", store, door, start, seq, entries, window_s=window_s)
    parsed = parse_message("riverside", topic, payload.encode())
    assert isinstance(parsed, Summary), parsed
    return parsed


def test_the_hub_knows_exactly_the_contracts_streams() -> None:
    assert summary_schemas() == schema_files()
    assert set(summary_schemas()) == {
        "shopkeeper.footfall-door.v1",
        "shopkeeper.footfall-store.v1",
        "shopkeeper.sales-category.v1",
    }


@pytest.mark.parametrize(("window_s", "name"), [(60, "60s"), (900, "15min"), (3600, "hourly"), (86400, "daily")])
def test_summaries_of_every_length_are_accepted_with_their_length(window_s: int, name: str) -> None:
    topic, payload = synthetic_summary("riverside", "s1", "front", T0 - T0 % window_s, 1, 5, window_s=window_s)
    assert topic == f"coop/v1/riverside/s1/t1/footfall/{name}"
    parsed = parse_message("riverside", topic, payload.encode())
    assert isinstance(parsed, Summary)
    assert (parsed.stream, parsed.window_seconds, parsed.key) == (f"footfall/{name}", window_s, "front")


def _reason(topic: str, doc: dict) -> str:  # type: ignore[type-arg]
    parsed = parse_message("riverside", topic, json.dumps(doc).encode())
    assert isinstance(parsed, Rejected)
    return parsed.reason


def test_a_window_length_that_is_not_the_topics_or_not_aligned_is_refused() -> None:
    topic, payload = synthetic_summary("riverside", "s1", "front", T0, 1, 5, window_s=900)
    doc = json.loads(payload)
    doc["window"] = {"start": "2025-11-16T09:00:00Z", "end": "2025-11-16T10:00:00Z", "seconds": 3600}
    assert "not the length its topic names" in _reason(topic, doc)
    doc["window"] = {"start": "2025-11-16T09:05:00Z", "end": "2025-11-16T09:20:00Z", "seconds": 900}
    assert "not a multiple" in _reason(topic, doc)
    doc = json.loads(payload)
    assert "not a window name" in _reason(topic.replace("/15min", "/900s"), {**doc, "stream": "footfall/900s"})


def test_benchmarks_are_per_window_length_even_at_the_same_start(conn: Connection) -> None:
    rows = [summary(f"q{i}", T0, 1, 900, entries=10 + i) for i in range(3)]
    rows += [summary(f"h{i}", T0, 1, 3600, entries=100 + i) for i in range(3)]
    store_batch(conn, "w1", rows)
    published = dict(refresh_benchmarks(conn, "riverside", 3, [T0]))
    quarter = json.loads(published["coop/v1/riverside/_hub/t1/benchmarks/footfall/15min/2025-11-16T09:00:00Z"])
    hourly = json.loads(published["coop/v1/riverside/_hub/t1/benchmarks/footfall/2025-11-16T09:00:00Z"])
    assert len(published) == 2
    assert (quarter["window"]["seconds"], quarter["median"], quarter["streams"]) == (
        900,
        11.0,
        ["footfall/15min", "footfall-total/15min"],
    )
    assert (hourly["window"]["seconds"], hourly["median"]) == (3600, 101.0)
    assert refresh_benchmarks(conn, "riverside", 3, [T0]) == []  # both stored; nothing changed


def test_shops_on_different_lengths_are_never_pooled(conn: Connection) -> None:
    rows = [summary(f"q{i}", T0, 1, 900) for i in range(2)] + [summary(f"h{i}", T0, 1, 3600) for i in range(2)]
    store_batch(conn, "w1", rows)
    assert refresh_benchmarks(conn, "riverside", 3, [T0]) == []  # 2 + 2 shops, but never 3 on one length


def test_a_15_minute_window_far_below_its_own_history_raises_an_alert(conn: Connection) -> None:
    start = T0 + 15 * 60  # 09:15
    history = [summary("s1", start - w * WEEK, w, 900, entries=80 + w) for w in range(1, 5)]
    decoy = [summary("s1", start - WEEK + 900, 9, 900, entries=0)]  # 09:30 a week ago: another time of day
    today = summary("s1", start, 10, 900, entries=5)
    store_batch(conn, "w1", [*history, *decoy, today])
    raised = footfall_alerts(conn, "riverside", AlertSettings(min_weeks=3), [start])
    assert len(raised) == 1
    alert = json.loads(raised[0][1])
    assert alert["kind"] == "footfall_low" and alert["window"]["seconds"] == 900 and alert["baseline"] == 82.5
    assert footfall_alerts(conn, "riverside", AlertSettings(min_weeks=3), [start]) == []  # raised once


def test_silence_is_counted_in_each_shops_own_windows(conn: Connection) -> None:
    now = float(T0 + 700)  # the hub's clock just after the newest window (windows ahead of it do not count)
    store_batch(
        conn,
        "w1",
        [
            summary("fast", T0 + 600, 1, 60),  # the newest 1-minute window: 09:10
            summary("slow", T0 + 420, 1, 60),  # three 1-minute windows behind it: silent
            summary("hourly", T0, 1, 3600),  # ten minutes behind, but that is not two hours
        ],
        now=now,
    )
    raised = {json.loads(p)["store"] for _t, p in liveness_alerts(conn, "riverside", AlertSettings(), now)}
    assert raised == {"slow"}


def _config(tmp_path: Path, k_min: int = 3):  # type: ignore[no-untyped-def]
    return load_hub_config(write_hub_config(tmp_path / "hub.toml", 1883, str(tmp_path / "unused.db"), k_min=k_min))


def test_the_dashboard_says_why_it_has_nothing(conn: Connection, tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert "No summary has arrived yet" in district_data(conn, config)["reason"]
    store_batch(conn, "w1", [parse_message("riverside", "coop/v1/riverside/s1/t1/footfall/15min", b"nope")])
    assert "1 message(s) were refused, the latest because: not JSON" in district_data(conn, config)["reason"]
    store_batch(conn, "w1", [summary("s1", T0, 1, 900), summary("s2", T0, 1, 900)])
    data = district_data(conn, config)
    (section,) = data["windows"]
    assert (section["window"], section["shops"], data["window_seconds"]) == ("15min", 2, 900)
    assert "at most 2 shop(s) completed the same 15min window" in section["reason"] and "k_min = 3" in section["reason"]
    shop = shop_data(conn, config, "s1")
    assert shop is not None and shop["window"] == "15min" and len(shop["footfall"]) == 1
    assert "No district band for these 15min windows" in shop["reason"]


def test_migration_keeps_hourly_benchmarks_and_keys_them_by_length(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import hub.db

    database = Database(str(tmp_path / "old.db"))
    monkeypatch.setattr(hub.db, "MIGRATIONS", hub.db.MIGRATIONS[:2])
    database.migrate()
    conn = database.connect()
    conn.execute("INSERT INTO benchmarks VALUES ('footfall', ?, 3600, 5, 1, 2, 3, '{}', 0)", (T0,))
    monkeypatch.undo()
    assert database.migrate()[0] == "0003_benchmarks_per_window_length"  # later migrations follow it
    conn.execute("INSERT INTO benchmarks VALUES ('footfall', ?, 900, 5, 1, 2, 3, '{}', 0)", (T0,))
    assert conn.query("SELECT window_seconds, median FROM benchmarks ORDER BY window_seconds") == [(900, 2), (3600, 2)]
    conn.close()
