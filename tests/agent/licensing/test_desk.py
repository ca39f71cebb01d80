"""The box's side of licensing: verified queries answered once under the policy and the privacy filter."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from agent.clock import NS_PER_S
from agent.config import AgentConfig
from agent.contract import DOOR_EVENT
from agent.errors import PrivacyError
from agent.licensing import catalogue, inbox
from agent.licensing.desk import LicensingDesk, decide
from agent.pipeline.release import WindowReleaser
from agent.privacy import accountant
from agent.privacy.journal import JOURNAL_NAME, ReleaseJournal
from agent.privacy.ledger import verify_chain
from agent.privacy.reconcile import reconcile
from agent.privacy.sampler import DeterministicBitSource, discrete_laplace
from agent.store import Store, releases
from agent.store import licensing as licensing_sql
from tests.conftest import T0_NS, ManualClock, make_config
from tests.licensing_kit import OTHER_KEY, CountingBits, encode, licensing_section, signed_query

HOUR = 3600 * NS_PER_S
DAY = 24 * HOUR
LIFETIME = '\n[privacy]\nlifetime_epsilon_per_window = "2"\n'


def shop(tmp_path: Path, approval: str = "auto", lifetime: str = LIFETIME) -> AgentConfig:
    # [privacy] must come before its sub-tables in TOML: prepend it by writing the section first.
    return make_config(tmp_path, extra=licensing_section(approval=approval, max_epsilon="1"), lifetime=lifetime)


@pytest.fixture
def cfg(tmp_path: Path) -> AgentConfig:
    return shop(tmp_path)


def add_entries(store: Store, per_hour: dict[int, int]) -> None:
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO events (boot_id, mono_ns, wall_ns, synced, driver, door, entries, exits)"
            " VALUES ('b', 0, ?, 1, 'test', 'front', ?, 0)",
            [(T0_NS + h * HOUR + 60 * NS_PER_S, n) for h, n in per_hour.items()],
        )


def released_day(cfg: AgentConfig, clock: ManualClock, per_hour: dict[int, int]) -> tuple[Store, WindowReleaser]:
    store = Store(cfg.db_path)
    add_entries(store, per_hour)
    releaser = WindowReleaser(cfg, store, clock)
    clock.advance(24 * 3600 + 121)
    assert releaser.tick() == 24
    return store, releaser


def receive(store: Store, cfg: AgentConfig, message: dict[str, object], clock: ManualClock) -> str:
    assert cfg.licensing is not None
    return inbox.receive(store, cfg.coop, cfg.licensing.coop_public_key, encode(message), clock.wall_ns())


def answers(store: Store) -> list[dict[str, Any]]:
    rows = store.conn().execute("SELECT payload FROM outbox WHERE topic LIKE '%/licensing/answers' ORDER BY seq")
    return [json.loads(p) for (p,) in rows]


def test_allowed_query_is_answered_once_with_exact_noise_in_the_ledger(cfg: AgentConfig, clock: ManualClock) -> None:
    store, releaser = released_day(cfg, clock, {9: 12, 10: 30})
    message = signed_query(clock.wall_ns() + DAY)
    assert receive(store, cfg, message, clock) == "stored"
    desk = LicensingDesk(cfg, store, clock, releaser.journal, bits=DeterministicBitSource(b"q"))
    assert desk.tick() == 1
    (answer,) = answers(store)
    noise = discrete_laplace(2, 1, 168, DeterministicBitSource(b"q"))  # L1 = 1, epsilon 1/2: scale 2
    sunday = 6 * 24  # 2025-11-16 is a Sunday
    assert answer["values"]["sun-09"] == 12 + int(noise[sunday + 9])
    assert answer["values"]["sun-10"] == 30 + int(noise[sunday + 10])
    assert answer["status"] == "answered" and answer["credit_cents"] == 250
    assert answer["privacy"]["epsilon_exact"] == "1/2" and answer["privacy"]["l1_sensitivity"] == 1
    query_id = message["query"]["id"]  # type: ignore[index]
    row = store.conn().execute("SELECT parameters FROM release_ledger WHERE stream = ?", (f"query:{query_id}",))
    params = json.loads(row.fetchone()[0])
    assert params["query_id"] == query_id and params["credit_cents"] == 250
    spends = store.conn().execute(
        "SELECT count(*), min(kind) FROM privacy_spend WHERE stream = ?", (f"query:{query_id}",)
    )
    assert spends.fetchone() == (24, "query")
    assert verify_chain(store.conn()) == []
    assert desk.tick() == 0  # released once


def test_forged_replayed_and_expired_queries_are_refused_and_counted(cfg: AgentConfig, clock: ManualClock) -> None:
    store, _ = released_day(cfg, clock, {})
    forged = signed_query(clock.wall_ns() + DAY, key=OTHER_KEY)
    assert receive(store, cfg, forged, clock) == "forged"
    altered = signed_query(clock.wall_ns() + DAY)
    altered["query"]["credit_cents"] = 1  # type: ignore[index]
    assert receive(store, cfg, altered, clock) == "forged"
    good = signed_query(clock.wall_ns() + DAY)
    assert receive(store, cfg, good, clock) == "stored"
    assert receive(store, cfg, good, clock) == "replayed"
    expired = signed_query(clock.wall_ns() - 1)
    assert receive(store, cfg, expired, clock) == "expired"
    counters = dict(store.conn().execute("SELECT name, value FROM counters WHERE name LIKE 'licensing_%'"))
    assert counters == {"licensing_refused_forged": 2, "licensing_refused_replayed": 1, "licensing_refused_expired": 1}
    assert len(licensing_sql.queries(store.conn())) == 1


def test_replay_is_refused_after_a_restart(cfg: AgentConfig, clock: ManualClock) -> None:
    store, _ = released_day(cfg, clock, {})
    good = signed_query(clock.wall_ns() + DAY)
    assert receive(store, cfg, good, clock) == "stored"
    store.close()
    assert receive(Store(cfg.db_path), cfg, good, clock) == "replayed"


def test_policy_refusal_carries_its_reason_and_spends_nothing(cfg: AgentConfig, clock: ManualClock) -> None:
    store, releaser = released_day(cfg, clock, {})
    for message in (
        signed_query(clock.wall_ns() + DAY, requester="adbroker"),
        signed_query(clock.wall_ns() + DAY, epsilon="2"),
        signed_query(clock.wall_ns() + DAY, kind="basket_value_bins"),
    ):
        assert receive(store, cfg, message, clock) == "stored"
    bits = CountingBits()
    assert LicensingDesk(cfg, store, clock, releaser.journal, bits=bits).tick() == 3
    reasons = sorted(a["reason"] for a in answers(store))
    assert "above this shop's largest 1 per query" in reasons[0]
    assert "does not answer basket_value_bins" in reasons[1]
    assert "does not answer queries from 'adbroker'" in reasons[2]
    assert all(a["status"] == "refused" and a["values"] is None and a["credit_cents"] == 0 for a in answers(store))
    assert bits.drawn == 0
    assert store.conn().execute("SELECT count(*) FROM privacy_spend WHERE kind = 'query'").fetchone() == (0,)


def test_query_over_the_lifetime_budget_is_refused_before_any_noise(tmp_path: Path, clock: ManualClock) -> None:
    cfg = shop(tmp_path)  # hourly streams cost 1 per window; lifetime 2
    store, releaser = released_day(cfg, clock, {3: 5})
    bits = CountingBits()
    desk = LicensingDesk(cfg, store, clock, releaser.journal, bits=bits)
    assert receive(store, cfg, signed_query(clock.wall_ns() + DAY, epsilon="1"), clock) == "stored"
    assert desk.tick() == 1 and bits.drawn > 0  # spends the remaining 1 in every window of the day
    drawn = bits.drawn
    assert receive(store, cfg, signed_query(clock.wall_ns() + DAY, epsilon="1/4"), clock) == "stored"
    assert desk.tick() == 1
    assert bits.drawn == drawn, "the refused query drew no noise"
    refusal = answers(store)[-1]
    assert refusal["status"] == "refused" and "lifetime budget" in refusal["reason"]
    assert "epsilon 9/4, over the budget 2" in refusal["reason"]


def test_window_not_yet_released_and_window_removed_by_retention_are_refused(
    cfg: AgentConfig, clock: ManualClock
) -> None:
    store, releaser = released_day(cfg, clock, {})
    desk = LicensingDesk(cfg, store, clock, releaser.journal)
    later = signed_query(clock.wall_ns() + DAY, params={"start": "2025-11-17", "end": "2025-11-18"})
    assert receive(store, cfg, later, clock) == "stored"
    with store.transaction() as conn:
        Store.set_state(conn, licensing_sql.RAW_GONE_KEY, str(T0_NS + 5 * HOUR))
    assert receive(store, cfg, signed_query(clock.wall_ns() + DAY), clock) == "stored"
    assert desk.tick() == 2
    reasons = " | ".join(a["reason"] for a in answers(store))
    assert "after the newest released window" in reasons
    assert "no longer holds the raw data of windows up to 2025-11-16T05:00:00Z" in reasons


def test_manual_approval_waits_for_the_owner(tmp_path: Path, clock: ManualClock) -> None:
    cfg = shop(tmp_path, approval="manual")
    store, releaser = released_day(cfg, clock, {})
    desk = LicensingDesk(cfg, store, clock, releaser.journal)
    first, second = signed_query(clock.wall_ns() + DAY), signed_query(clock.wall_ns() + DAY)
    for message in (first, second):
        assert receive(store, cfg, message, clock) == "stored"
    assert desk.tick() == 0 and answers(store) == []
    assert {r["status"] for r in licensing_sql.queries(store.conn())} == {"pending"}
    assert decide(store, first["query"]["id"], True, clock.wall_ns()) == "approved"  # type: ignore[index]
    assert decide(store, second["query"]["id"], False, clock.wall_ns(), "not this month") == "refused"  # type: ignore[index]
    assert desk.tick() == 2
    by_status = {a["status"]: a for a in answers(store)}
    assert by_status["answered"]["credit_cents"] == 250
    assert by_status["refused"]["reason"] == "not this month"
    assert "is answered" in decide(store, first["query"]["id"], True, clock.wall_ns())  # type: ignore[index]


def test_hourly_release_refused_before_noise_when_a_secure_round_took_the_window(
    cfg: AgentConfig, clock: ManualClock
) -> None:
    store = Store(cfg.db_path)
    bits = CountingBits()
    releaser = WindowReleaser(cfg, store, clock, bits=bits)
    charge = accountant.Charge(DOOR_EVENT, Fraction(3, 2))
    with store.transaction() as conn:
        assert accountant.over_budget(conn, cfg.filter_budget, T0_NS, charge) is None
        ledger_id = releases.insert_ledger_row(conn, secure_round_row(T0_NS))
        releases.insert_spend(conn, T0_NS, "secagg:r1", DOOR_EVENT, "3/2", "", ledger_id, accountant.SECURE_ROUND)
    clock.advance(3600 + 121)
    with pytest.raises(PrivacyError, match="over the budget 2"):
        releaser.tick()
    assert store.conn().execute("SELECT count(*) FROM outbox").fetchone() == (0,)
    assert bits.drawn == 0, "refused before any noise was drawn"


def secure_round_row(start: int) -> dict[str, object]:
    from agent.privacy import ledger

    row: dict[str, object] = {
        "window_start_ns": start,
        "window_end_ns": start + HOUR,
        "stream": "secagg:r1",
        "noisy_values": "{}",
        "mechanism": "secure_aggregation",
        "parameters": "{}",
        "epsilon": "3/2",
        "sampler_version": "test",
        "released_wall_ns": start,
        "prev_hash": "0" * 64,
    }
    row["hash"] = ledger.row_hash(str(row["prev_hash"]), row)
    return row


def test_a_lost_database_gets_every_window_spend_of_an_answer_back(cfg: AgentConfig, clock: ManualClock) -> None:
    store, releaser = released_day(cfg, clock, {})
    assert receive(store, cfg, signed_query(clock.wall_ns() + DAY, epsilon="1"), clock) == "stored"
    assert LicensingDesk(cfg, store, clock, releaser.journal).tick() == 1
    store.close()
    for suffix in ("", "-wal", "-shm"):
        Path(str(cfg.db_path) + suffix).unlink(missing_ok=True)
    fresh = Store(cfg.db_path)
    reconcile(fresh, ReleaseJournal(cfg.data_dir / JOURNAL_NAME))
    conn = fresh.conn()
    assert accountant.spent(conn, T0_NS + 7 * HOUR, DOOR_EVENT) == 2
    assert fresh.get_state("next_window_start_ns") == str(T0_NS + DAY)  # the answer did not move the grid
    assert catalogue.hour_of_week(T0_NS) == 6 * 24
