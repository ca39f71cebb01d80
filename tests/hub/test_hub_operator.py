"""Operator basics: the per-minute activity line, the add-user and loadgen commands, money, honest freshness."""

from __future__ import annotations

import builtins
import io
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hub import cli
from hub.auth import AuthError, add_user, authenticate, find_session, open_session
from hub.config import load_hub_config
from hub.dashboard_alerts import acknowledge
from hub.dashboard_pages import FRESHNESS_TEXT, freshness
from hub.dashboard_time import label, money, parse_range
from hub.db import Connection, Database
from hub.queries import alerts_explained
from hub.tasks import PeriodicTasks
from tests.hub.web_fixtures import write_config


def _config(tmp_path: Path) -> Any:
    return load_hub_config(write_config(tmp_path / "hub.toml", str(tmp_path / "hub.db"), 8080))


def test_activity_line_counts_stored_rejected_and_alerts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = _config(tmp_path)
    database = Database(config.database)
    database.migrate()
    conn = database.connect()
    tasks = PeriodicTasks(config, database, lambda _t, _p, _r: None)
    tasks.log_activity(conn, force=True)  # the baseline
    conn.execute("INSERT INTO counters (name, value) VALUES ('stored@hub-1', 7), ('rejected@hub-1', 2)")
    with caplog.at_level(logging.INFO, logger="hub.tasks"):
        tasks.log_activity(conn)  # less than a minute later: nothing
        assert not caplog.records
        tasks.log_activity(conn, force=True)
    conn.close()
    assert len(caplog.records) == 1
    assert "stored 7, duplicates 0, rejected 2, alerts raised 0" in caplog.records[0].getMessage()


def test_add_user_reads_the_password_from_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO("a-long-password\n"))
    argv = ["add-user", "bea", "--role", "shop", "--store", "shop-0003", "--config", str(config.path)]
    assert cli.main([*argv, "--password-stdin"]) == 0
    conn = Database(config.database).connect()
    user = authenticate(conn, "bea", "a-long-password")
    stored = conn.query("SELECT password_hash FROM hub_users WHERE name = 'bea'")[0][0]
    conn.close()
    assert user is not None and user.role == "shop" and user.store == "shop-0003"
    assert stored.startswith("scrypt$") and "a-long-password" not in stored


def test_add_user_refuses_short_passwords_and_shop_accounts_without_a_store(tmp_path: Path) -> None:
    config = _config(tmp_path)
    database = Database(config.database)
    database.migrate()
    conn = database.connect()
    with pytest.raises(AuthError, match="too short"):
        add_user(conn, "cid", "admin", None, "short")
    with pytest.raises(AuthError, match="--store"):
        add_user(conn, "cid", "shop", None, "long-enough-password")
    conn.close()


def test_loadgen_without_devtools_says_how_to_run_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_import = builtins.__import__

    def no_devtools(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("devtools"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_devtools)
    assert cli.main(["loadgen", "--shops", "2", "--days", "1"]) == 2
    assert "python -m devtools.loadgen" in capsys.readouterr().err


def test_money_has_units_and_currency() -> None:
    assert money(789, "EUR") == "7.89 EUR"
    assert money(None, "EUR") == "-"


def test_a_shop_that_never_sent_a_summary_is_not_fresh() -> None:
    shop = {"last_summary_at": None, "silent": False}
    assert freshness(shop) == "never" and FRESHNESS_TEXT["never"] == "no summary yet"
    assert freshness({"last_summary_at": 1.0, "silent": False}) == "fresh"


def test_ranges_follow_the_coop_calendar() -> None:
    tz = ZoneInfo("Europe/Amsterdam")
    day = parse_range({"range": "day", "date": "2026-03-29"}, tz, None)  # the spring DST change: 23 hours
    assert day.end_s - day.start_s == 23 * 3600
    custom = parse_range({"range": "custom", "from": "2026-01-01", "to": "2026-01-31"}, tz, None)
    assert (custom.end_s - custom.start_s) == 31 * 86400
    assert parse_range({"range": "custom", "from": "2026-02-01", "to": "2026-01-01"}, tz, 0).kind == "week"
    assert label(1_763_888_400, tz, 3600, 7 * 86400) == "Sun 23 Nov 10:00"


def test_accounts_sessions_and_acks_on_both_databases(conn: Connection) -> None:
    add_user(conn, "anna", "admin", None, "anna-password-1")
    add_user(conn, "shop1", "shop", "shop-0001", "shop-password-1")
    admin, shop = authenticate(conn, "anna", "anna-password-1"), authenticate(conn, "shop1", "shop-password-1")
    assert admin is not None and shop is not None and authenticate(conn, "anna", "wrong") is None
    token = open_session(conn, shop, 60)
    found = find_session(conn, token)
    assert found is not None and found.user == shop and find_session(conn, token, now=time.time() + 120) is None
    conn.execute(
        "INSERT INTO alerts (alert_id, store, kind, window_start_s, payload, raised_at) VALUES (?, ?, ?, ?, ?, ?)",
        ("shop-0002/silent/1", "shop-0002", "silent", 1, json.dumps({"detail": "quiet"}), 1.0),
    )
    assert not acknowledge(conn, shop, "shop-0002/silent/1")  # not this shop's alert
    assert acknowledge(conn, admin, "shop-0002/silent/1")
    rows = alerts_explained(conn)
    assert [(r["alert_id"], r["acked_by"]) for r in rows] == [("shop-0002/silent/1", "anna")]
    assert alerts_explained(conn, acked=False) == []
    add_user(conn, "shop1", "shop", "shop-0001", "a-new-password")  # a reset signs the account out
    assert find_session(conn, token) is None


def test_loadgen_command_publishes_days_at_a_rate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agent.demo.local_broker import LocalBroker

    with LocalBroker(tmp_path / "broker") as broker:
        started = time.monotonic()
        code = cli.main(["loadgen", "--port", str(broker.port), "--shops", "2", "--days", "1", "--rate", "100"])
        elapsed = time.monotonic() - started
    # 2 shops x 24 hours x 2 doors, paced at 100 messages per second
    assert code == 0 and "96/96 acknowledged" in capsys.readouterr().err
    assert elapsed >= 0.9
