"""The coop's forecast model: built from what secure aggregation released and nothing per shop, charged in
each shop's window ledger, stored and published retained, and received by the shops through a real broker."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.contract import district_alert_topic, forecast_model_topic
from agent.contract.windows import iso_utc
from agent.demo.local_broker import LocalBroker
from agent.forecast import job
from agent.pipeline.publish import Publisher
from agent.store import Store
from agent.store import forecasts as sql
from devtools.district import ShopSpec, simulate
from devtools.district_rounds import RHO, SecureTotals, secure_totals
from hub.db import Connection, Database
from hub.forecast_model import TABLE_COLUMNS, district_model, model_rows
from hub.forecast_task import CoopForecast
from tests.conftest import make_config

# The table as hub migration 0110 creates it; the rows are what the secure rounds' coordinator stores.
INSERT_TOTALS = f"INSERT INTO secagg_district_totals ({TABLE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
ALLOWED = {"secagg_district_totals", "coop_forecast_models", "sqlite_master"}
SHOPS = [ShopSpec(f"s{i}", kind, size) for i, (kind, size) in
         enumerate([("bakery", 20), ("grocer", 30), ("cafe", 12), ("bookshop", 8), ("bakery", 40)])]  # fmt: skip
_ROUNDS: list[SecureTotals] = []


def _rounds() -> SecureTotals:
    """Three weekly secure rounds of a five-shop district (computed once for this module)."""
    if not _ROUNDS:
        # Seeded noise shares: the warning test below reads noisy hours, so it must see the same ones every run.
        _ROUNDS.append(secure_totals(simulate(SHOPS, days=21, seed=3), noise_seed=3))
    return _ROUNDS[0]


def _fill(conn: Connection, totals: SecureTotals) -> None:
    conn.executemany(INSERT_TOTALS, totals.table_rows())


def _only_released(tmp_path: Path) -> Connection:
    """A hub connection that may read the secure totals and the forecast's own table, and nothing else."""
    Database(str(tmp_path / "hub.db")).migrate()
    raw = sqlite3.connect(tmp_path / "hub.db", isolation_level=None, check_same_thread=False)
    _fill(Connection(raw, False), _rounds())

    def authorize(action: int, table: str | None, column: str | None, *_rest: object) -> int:
        # The district warning's insert checks its own alert id for a duplicate: that one column is allowed.
        if action == sqlite3.SQLITE_READ and table not in ALLOWED and (table, column) != ("alerts", "alert_id"):
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    raw.set_authorizer(authorize)
    return Connection(raw, False)


def test_the_hub_builds_the_coop_model_without_reading_any_per_shop_value(tmp_path: Path) -> None:
    conn = _only_released(tmp_path)
    with pytest.raises(sqlite3.DatabaseError):  # the guard is real: a shop's released summaries are off limits
        conn.query("SELECT entries FROM summaries")
    published: list[tuple[str, str, bool]] = []
    task = CoopForecast("riverside", "UTC")
    assert task.refresh(conn, lambda t, p, r: published.append((t, p, r)), now=1.0e9)
    assert [(t, r) for t, _p, r in published] == [(forecast_model_topic("riverside"), True)]
    model = json.loads(published[0][1])
    expected = district_model(_rounds().rows, "UTC")
    assert model["streams"] == expected["streams"]
    stream = model["streams"]["footfall/hourly"]
    assert len(stream["profile"]) == 168 and abs(sum(stream["profile"]) / 168 - 1) < 1e-3
    assert stream["rounds"] == ["footfall-w000", "footfall-w001", "footfall-w002"]
    assert conn.query("SELECT rows_used FROM coop_forecast_models") == [(3 * 168,)]
    assert not task.refresh(conn, lambda t, p, r: published.append((t, p, r)))  # nothing new: nothing sent
    assert len(published) == 1


def test_every_window_behind_the_model_is_charged_in_each_shops_window_ledger() -> None:
    totals = _rounds()
    windows = {iso_utc(int(r[2])): str(r[0]) for r in totals.rows}
    assert len(totals.ledgers) == len(SHOPS)
    for ledger in totals.ledgers.values():
        # Spent before the masked input left (agent/coop/secagg/shop.py): each window once, to its round,
        # at rho 1/32 zCDP per window (the round's config; docs/forecasts.md).
        assert ledger.spent == windows
    assert pytest.approx(1 / 32) == RHO


def test_the_task_runs_on_both_backends_and_a_missing_totals_table_is_not_an_error(database: Database) -> None:
    conn = database.connect()
    task = CoopForecast("riverside", "UTC")
    sent: list[str] = []
    assert not task.refresh(conn, lambda t, p, r: sent.append(t))  # before secure aggregation is wired in
    _fill(conn, _rounds())
    assert task.refresh(conn, lambda t, p, r: sent.append(t))
    assert sent == [forecast_model_topic("riverside")]
    conn.close()


def test_the_retained_model_reaches_a_shop_and_its_forecast_leans_on_it(tmp_path: Path, broker: LocalBroker) -> None:
    conn = _only_released(tmp_path)
    hub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="_hub")
    hub.connect("127.0.0.1", broker.port)
    hub.loop_start()
    infos = []
    CoopForecast("riverside", "UTC").refresh(conn, lambda t, p, r: infos.append(hub.publish(t, p, qos=1, retain=r)))
    infos[0].wait_for_publish(10)
    hub.loop_stop()
    hub.disconnect()
    # The shop connects afterwards and still gets it: the model is retained.
    (tmp_path / "shop").mkdir()
    config = make_config(tmp_path / "shop", broker.port)
    store = Store(config.db_path)
    publisher = Publisher(config, store)
    publisher.start()
    deadline = time.monotonic() + 15
    while sql.coop_model(store.conn()) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    publisher.stop()
    received = sql.coop_model(store.conn())
    assert received is not None and received["streams"]["footfall/hourly"]["rounds"][-1] == "footfall-w002"
    # A shop with one week of its own counts: its next fit scales the district shape and blends it in.
    today = dt.datetime.now(dt.UTC).date()
    week = simulate(SHOPS, days=7, seed=8, start=today - dt.timedelta(days=7)).footfall["s1"]
    first = int(dt.datetime.combine(today - dt.timedelta(days=7), dt.time(0), tzinfo=dt.UTC).timestamp()) * 10**9
    with store.transaction() as db:
        db.executemany(
            "INSERT INTO events (boot_id, mono_ns, wall_ns, synced, driver, door, entries, exits)"
            " VALUES ('b', 0, ?, 1, 'sim', 'front', ?, 0)",
            [(first + h * 3600 * 10**9 + 60 * 10**9, int(c)) for h, c in enumerate(week) if c],
        )
    assert job.run_fit(store, config.db_path, "UTC", time.time_ns()).ok
    run = sql.latest_run(store.conn())
    assert run is not None and run["series"]["footfall"]["coop_weight"] is not None
    assert "coop" in run["series"]["footfall"]["holdout_mae"]
    store.close()


def test_a_model_that_is_not_one_is_ignored_and_counted(tmp_path: Path) -> None:
    from agent.coop import district

    store = Store(tmp_path / "a.db")
    assert not district.record(store, forecast_model_topic("riverside"), b'{"schema": "something else"}')
    assert store.counters()["hub_messages_ignored"] == 1
    assert sql.coop_model(store.conn()) is None
    store.close()


def test_day_effects_come_from_last_years_same_date() -> None:
    start = dt.datetime(2024, 12, 30, tzinfo=dt.UTC)
    hour = 3600 * 10**9
    rows = []
    for h in range(410 * 24):
        when = start + dt.timedelta(hours=h)
        shut = (when.month, when.day) == (1, 1)
        total = 0 if shut or not 8 <= when.hour < 18 else 100
        rows.append(("r", "footfall/hourly", int(when.timestamp()) * 10**9, hour, total, 0.0, 10))
    stream = district_model(rows)["streams"]["footfall/hourly"]
    assert stream["calendar_effects"] == {"01-01": 0.02}  # shut a year ago: the shape for next New Year's Day
    assert max(stream["profile"]) == pytest.approx(168 / 70)  # open 10 hours x 7 days, flat


def test_a_district_shortfall_since_ten_is_a_retained_district_warning(tmp_path: Path) -> None:
    conn = _only_released(tmp_path)
    day_ns = 86400 * 10**9
    rows = _rounds().rows
    last_week = rows[-168:]
    # One more released day, like the same weekday a week before until 10:00 and 40 % quieter from then on.
    extra = [
        ("footfall-w003", r[1], int(r[2]) + 7 * day_ns, r[3], int(r[4]) if i < 10 else int(int(r[4]) * 0.6), r[5], r[6])
        for i, r in enumerate(last_week[:24])
    ]
    conn.executemany(INSERT_TOTALS, [(r, "footfall_store", "all", "entries", *rest) for r, _m, *rest in extra])
    sent: list[tuple[str, str, bool]] = []
    CoopForecast("riverside", "UTC").refresh(conn, lambda t, p, r: sent.append((t, p, r)), now=2.0e9)
    topics = [t for t, _p, _r in sent]
    assert topics == [forecast_model_topic("riverside"), district_alert_topic("riverside")]
    warning = json.loads(sent[1][1])
    # Five shops' hours are noisy: the onset it names is within an hour of the true one.
    assert warning["kind"] == "district_footfall_low" and warning["since"] in ("09:00", "10:00", "11:00")
    assert f"under forecast since {warning['since']} on" in warning["words"]
    assert -0.6 < warning["share"] < -0.25
    # Raised once: a second worker (or pass) over the same totals publishes the model, not the warning again.
    again: list[str] = []
    CoopForecast("riverside", "UTC").refresh(conn, lambda t, p, r: again.append(t), now=2.0e9)
    assert again == [forecast_model_topic("riverside")]


def test_only_the_series_a_shop_forecasts_are_read_from_the_secure_totals() -> None:
    hour, day = 3600 * 10**9, 86400 * 10**9
    table = [
        ("r1", "footfall_store", "all", "entries", 0, hour, 40, 4.0, 10),
        ("r1", "footfall_store", "all", "exits", 0, hour, 38, 4.0, 10),  # exits: not forecast
        ("r2", "footfall_door", "front", "entries", 0, hour, 30, 4.0, 10),  # one door: not the shop's total
        ("r3", "sales_revenue", "bakery", "revenue_cents", 0, day, 90_000, 9.0, 8),
        ("r4", "sales_revenue", "bakery", "revenue_cents", 0, hour, 9_000, 9.0, 8),  # hourly sales: not modelled
    ]
    assert model_rows(table) == [
        ("r1", "footfall/hourly", 0, hour, 40, 4.0, 10),
        ("r3", "sales/bakery/daily", 0, day, 90_000, 9.0, 8),
    ]


def test_a_nan_in_the_model_raises_in_the_task_and_nothing_is_stored_or_sent(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the hub publishes is strict JSON (hub.contract.published_json): a NaN is a loud error in the
    periodic task (logged and retried by its runner), never 'NaN' in a retained message."""
    import hub.forecast_task

    conn = database.connect()
    _fill(conn, _rounds())
    monkeypatch.setattr(hub.forecast_task, "district_model", lambda rows, tz: {"level": float("nan")})
    sent: list[str] = []
    with pytest.raises(ValueError, match="not JSON compliant"):
        CoopForecast("riverside", "UTC").refresh(conn, lambda t, p, r: sent.append(p))
    assert sent == [] and conn.query("SELECT count(*) FROM coop_forecast_models")[0][0] == 0
    conn.close()
