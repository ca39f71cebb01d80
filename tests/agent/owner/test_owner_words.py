"""Exact local figures, the CSV export and `shopkeeper status` in plain words, on a real store."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest

from agent.cli import main
from agent.errors import ConfigError
from agent.owner import figures, sensors
from agent.owner.localtime import NS_PER_S, LocalZone, ago
from agent.store import Store, raw_events
from tests.conftest import T0_NS, make_config

ZONE = "Asia/Kathmandu"  # UTC+5:45: hours that do not start on a UTC hour


def _ns(zone: LocalZone, hour: int, minute: int) -> int:
    local = dt.datetime(2025, 11, 16, hour, minute, tzinfo=zone.tz)
    return int(local.timestamp()) * NS_PER_S


def _fill(store: Store, zone: LocalZone) -> None:
    with store.transaction() as conn:
        raw_events.insert_door_counts(
            conn,
            [
                ("b", 1, _ns(zone, 9, 0), 1, "front_door", "front", 2, 0),
                ("b", 2, _ns(zone, 9, 59), 1, "front_door", "front", 1, 1),
                ("b", 3, _ns(zone, 10, 0), 1, "front_door", "front", 0, 2),
                ("b", 4, _ns(zone, 10, 30), 0, "front_door", "front", 7, 7),  # clock not synced yet: not placed
            ],
        )
        for i, (category, cents, name) in enumerate((("bakery", 350, "=HYPERLINK(1)"), ("dairy", 120, "Milk"))):
            raw_events.insert_basket(
                conn,
                ("b", 10 + i, _ns(zone, 9, 30), 1, "till", f"r{i}", "sale", "cash", "EUR", cents, "", ""),
                [(name, "", "", category, 1, cents, cents)],
            )


def test_door_counts_fall_in_local_hours_exactly(tmp_path: Path) -> None:
    zone = LocalZone(ZONE)
    store = Store(tmp_path / "db.sqlite")
    _fill(store, zone)
    day = figures.today(store.conn(), zone, _ns(zone, 12, 0))
    cells = {(r.hour.strftime("%H:%M"), r.door): (r.entries, r.exits) for r in day.door_hours}
    assert cells == {("09:00", "front"): (3, 1), ("10:00", "front"): (0, 2)}
    assert [(h.strftime("%H"), n) for h, n in day.occupancy_by_hour()] == [("09", 2), ("10", 0)]
    assert (day.baskets, day.revenue_cents, day.waiting_for_clock) == (2, 470, 1)
    assert {c.category: c.baskets for c in day.categories} == {"bakery": 1, "dairy": 1}


def test_the_csv_export_cannot_run_a_formula(tmp_path: Path) -> None:
    zone = LocalZone(ZONE)
    store = Store(tmp_path / "db.sqlite")
    _fill(store, zone)
    text = figures.sales_csv(store.conn(), zone, zone.day_start(_ns(zone, 12, 0)), zone.day_start(_ns(zone, 12, 0), -1))
    assert "'=HYPERLINK(1)" in text and ",3.50," in text and f"time ({ZONE})" in text


def test_relative_times_read_as_words() -> None:
    assert ago(T0_NS, T0_NS - 10 * NS_PER_S) == "just now"
    assert ago(T0_NS, T0_NS - 120 * NS_PER_S) == "2 minutes ago"
    assert ago(T0_NS, T0_NS - 3 * 3600 * NS_PER_S) == "3 hours ago"


def test_status_speaks_plain_words_sensors_first_and_never_prints_none(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = make_config(tmp_path, extra=f'\n[owner_page]\ntimezone = "{ZONE}"\n')
    store = Store(config.db_path)
    _fill(store, LocalZone(ZONE))
    snapshot = {
        "at_ns": T0_NS,
        "real_ns": time.time_ns(),
        "stopped": False,
        "drivers": {
            "front_door": {"kind": "terabee", "doors": ["front"], "health": {"connected": True, "running": True},
                           "unset_secrets": []},
            "square_pos": {"kind": "square", "doors": [], "health": {"connected": True, "running": True,
                           "unauthorised": 3}, "unset_secrets": ["signature_key (SQUARE_KEY)"]},
        },
    }  # fmt: skip
    with store.transaction() as conn:
        Store.set_state(conn, sensors.STATE_KEY, json.dumps(snapshot))
    store.close()
    assert main(["status", str(config.path)]) == 0
    out = capsys.readouterr().out
    assert "None" not in out and f"times in {ZONE}" in out
    assert out.index("Sensors and feeds") < out.index("Kept on this box") < out.index("What left the shop")
    assert "refusing  Square (square_pos): no reading yet; 3 payment notifications refused" in out
    assert "signature key not set (environment variable SQUARE_KEY)" in out
    assert "2 baskets" in out and "front door counter (front_door)" in out
    assert main(["status", str(config.path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sensors"][1]["state"] == "refusing" and report["baskets"]["count"] == 2


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ('listen = "nowhere"', "owner_page.listen"),
        ('password_hash = "plain"', "owner_page.password_hash"),
        ('timezone = "Mars/Olympus"', "owner_page.timezone"),
        ("colour = 1", "owner_page.colour"),
    ],
)
def test_a_bad_owner_page_section_is_one_config_error_naming_the_key(tmp_path: Path, section: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_config(tmp_path, extra=f"\n[owner_page]\n{section}\n")
    assert key in str(caught.value)


def test_the_owner_page_is_on_loopback_unless_configured(tmp_path: Path) -> None:
    page = make_config(tmp_path).owner_page
    assert page is not None and (page.host, page.port, page.lan) == ("127.0.0.1", 8088, False)
    assert make_config(tmp_path, extra='\n[owner_page]\nlisten = ""\n').owner_page is None
