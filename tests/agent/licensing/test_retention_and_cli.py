"""What retention removed cannot be asked about; the owner's and the coop's command lines."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from agent.cli import main as agent_main
from agent.licensing import inbox
from agent.licensing.desk import LicensingDesk
from agent.pipeline.retention import Retention
from agent.store import Store
from agent.store import licensing as licensing_sql
from hub.cli import main as hub_main
from tests.agent.licensing.test_desk import DAY, HOUR, add_entries, answers, released_day, shop
from tests.conftest import T0_NS, ManualClock
from tests.licensing_kit import encode, signed_query


def test_retention_by_age_records_what_can_no_longer_be_asked(tmp_path: Path, clock: ManualClock) -> None:
    cfg = shop(tmp_path)
    store, releaser = released_day(cfg, clock, {h: 3 for h in range(24)})
    add_entries(store, {40: 2})  # the next day, 16:00: younger than the age bound, kept
    clock.advance(2 * 86400)
    releaser.tick()
    Retention(store, clock, max_age_s=int(1.5 * 86400), max_bytes=10**9).run()  # the first day is older
    gone = store.get_state(licensing_sql.RAW_GONE_KEY)
    assert gone is not None and int(gone) == T0_NS + 23 * HOUR
    assert store.conn().execute("SELECT count(*) FROM events").fetchone() == (1,)  # one row of 2 entries
    assert cfg.licensing is not None
    message = signed_query(clock.wall_ns() + DAY)
    inbox.receive(store, cfg.coop, cfg.licensing.coop_public_key, encode(message), clock.wall_ns())
    assert LicensingDesk(cfg, store, clock, releaser.journal).tick() == 1
    (refusal,) = answers(store)
    assert "no longer holds the raw data of windows up to 2025-11-16T23:00:00Z" in refusal["reason"]


def test_owner_lists_and_refuses_on_the_command_line(
    tmp_path: Path, clock: ManualClock, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = shop(tmp_path, approval="manual")
    store, releaser = released_day(cfg, clock, {})
    assert cfg.licensing is not None
    message = signed_query(clock.wall_ns() + DAY)
    inbox.receive(store, cfg.coop, cfg.licensing.coop_public_key, encode(message), clock.wall_ns())
    LicensingDesk(cfg, store, clock, releaser.journal).tick()
    query_id = str(message["query"]["id"])  # type: ignore[index]
    assert agent_main(["queries", "list", str(cfg.path)]) == 0
    listed = capsys.readouterr().out
    assert query_id in listed and "pending" in listed and "credit 2.50" in listed
    assert agent_main(["queries", "refuse", str(cfg.path), query_id, "--reason", "not for sale"]) == 0
    assert capsys.readouterr().out.strip() == "refused"
    assert agent_main(["queries", "approve", str(cfg.path), query_id]) == 1
    assert "not waiting for a decision" in capsys.readouterr().out
    assert licensing_sql.query(Store(cfg.db_path).conn(), query_id)["reason"] == "not for sale"  # type: ignore[index]


def test_coop_keygen_never_overwrites_its_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "coop.key"
    assert hub_main(["licensing", "keygen", str(key)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith('coop_public_key = "') and len(base64.b64decode(key.read_text())) == 32
    assert key.stat().st_mode & 0o777 == 0o600
    before = key.read_text()
    assert hub_main(["licensing", "keygen", str(key)]) == 2
    assert key.read_text() == before
