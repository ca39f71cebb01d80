"""A district licensing query combined by secure aggregation, on the shop's side: the desk accepts it under the
shop's policy and the filter (no values, no spend, nothing drawn), then the round participant enters the true
table into the hub's round (real SQLite store and config, the hub and two peer shops in process, messages as
the MQTT topics and bytes they arrive as). What must hold: only a round that is exactly the accepted query
(its cells, at most its rho, at least its sensitivity) is joined; the charge is the round's rho in every window
of the range, with the query's ledger row and credit, in the transaction that marks the input sent; the
filter decides again at that moment; the hub's sum holds this shop's true table exactly."""

from __future__ import annotations

import dataclasses
import json
import typing
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from agent.clock import NS_PER_S
from agent.clock import Clock as AgentClock
from agent.contract import DOOR_EVENT, secagg_hub_topic
from agent.contract.licensing import SECURE_AGGREGATION
from agent.coop import query_round
from agent.coop.secagg.messages import RoundConfig
from agent.coop.secagg.shop import ShopRound
from agent.coop.secagg.transport import RoundOpening
from agent.licensing import inbox
from agent.licensing.desk import LicensingDesk
from agent.licensing.inbox import query_from_row
from agent.privacy import accountant
from agent.privacy.journal import JOURNAL_NAME, ReleaseJournal
from agent.privacy.reconcile import NEXT_WINDOW_KEY
from agent.store import Store
from agent.store import licensing as licensing_sql
from tests.agent.coop.test_round_participant import DAY_S, WINDOW_S, Clock, Setup, feed, run_round, state
from tests.licensing_kit import CountingBits, encode, licensing_section, signed_query

DAY_START_S = DAY_S - 10 * 3600  # 2026-11-16T00:00:00Z
DAY_END_NS = (DAY_START_S + 86400) * NS_PER_S
PARAMS = {"start": "2026-11-16", "end": "2026-11-17"}
ENTRIES = {0: 2, 7: 5, 13: 11, 23: 1}  # hour of the day -> door entries (a Monday: hour of week = hour)


class QuerySetup(Setup):
    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.config.path.write_text(self.config.path.read_text() + licensing_section(max_epsilon="1"))
        from agent.config import load_config

        self.config = load_config(self.config.path)
        with self.store.transaction() as conn:
            for hour, n in ENTRIES.items():
                wall = (DAY_START_S + hour * 3600 + 30) * NS_PER_S
                window = wall - wall % (WINDOW_S * NS_PER_S)
                conn.executemany(
                    "INSERT INTO events (boot_id, mono_ns, wall_ns, synced, driver, door, entries, exits, window_ns)"
                    " VALUES ('b', 0, ?, 1, 'front_door', 'front', 1, 0, ?)",
                    [(wall, window)] * n,
                )
            Store.set_state(conn, NEXT_WINDOW_KEY, str(DAY_END_NS))  # the whole day is released
        self.journal = ReleaseJournal(self.config.data_dir / JOURNAL_NAME)
        self.bits = CountingBits()

    def ask(self, epsilon: str = "1/2", combine: str = SECURE_AGGREGATION) -> str:
        message = signed_query(DAY_END_NS + 86400 * NS_PER_S, params=PARAMS, epsilon=epsilon, combine=combine)
        assert inbox.receive(self.store, "riverside", _coop_key(), encode(message), Clock().wall_ns()) == "stored"
        desk = LicensingDesk(self.config, self.store, typing.cast(AgentClock, Clock()), self.journal, self.bits)
        assert desk.tick() == 1
        return str(message["query"]["id"])  # type: ignore[index]

    def round_for(self, query_id: str, **change: object) -> RoundConfig:
        query = query_from_row(licensing_sql.query(self.store.conn(), query_id) or {})
        cells = query_round.query_cells(self.config, query)
        rho = query.round_rho
        config = RoundConfig(
            "riverside", f"query-{query_id}", self.roster.digest(), tuple(sorted(self.keys)), 2, 0, len(cells),
            10_000_000, 1, rho.numerator, rho.denominator, 0, cells,
        )  # fmt: skip
        return dataclasses.replace(config, **change)  # type: ignore[arg-type]


def _coop_key() -> bytes:
    from agent.contract.licensing import decode_public_key
    from tests.licensing_kit import public_key_b64

    return decode_public_key(public_key_b64())


@pytest.fixture
def qs(tmp_path: Path) -> QuerySetup:
    return QuerySetup(tmp_path)


def query_spends(qs: QuerySetup, query_id: str) -> list[tuple[str, str, str]]:
    return [
        (str(e), str(r), str(k))
        for e, r, k in qs.store.conn().execute(
            "SELECT epsilon, rho, kind FROM privacy_spend WHERE stream = ?", (f"query:{query_id}/round",)
        )
    ]


def test_the_desk_accepts_with_keys_only_and_spends_nothing(qs: QuerySetup) -> None:
    query_id = qs.ask()
    row = licensing_sql.query(qs.store.conn(), query_id)
    assert row is not None and row["status"] == "accepted"
    payloads = [json.loads(p) for (p,) in qs.store.conn().execute("SELECT payload FROM outbox")]
    assert len(payloads) == 1 and payloads[0]["status"] == "accepted" and payloads[0]["values"] is None
    assert len(payloads[0]["keys"]) == 168 and payloads[0]["privacy"]["l2_sensitivity"] == 1
    assert payloads[0]["privacy"]["round_rho"] == "1/8"  # (1/2)^2 / 2
    assert query_spends(qs, query_id) == [] and qs.bits.drawn == 0


def test_a_round_that_is_the_query_sums_the_true_table_and_charges_every_window(qs: QuerySetup) -> None:
    query_id = qs.ask()
    config = qs.round_for(query_id)
    peer_inputs = list(range(168))
    peers: dict[str, ShopRound] = {}
    total = run_round(qs, qs.participant(), config, peer_inputs, peers)
    round_row = state(qs, config.round_id)
    assert round_row["state"] == "released"
    mine = np.asarray(json.loads(round_row["true"]), dtype=np.int64)
    expected = np.zeros(168, dtype=np.int64)
    for hour, n in ENTRIES.items():
        expected[hour] = n  # 2026-11-16 is a Monday: hour of the week = hour of the day
    assert (mine == expected).all()
    # The sum is exactly every shop's table and noise: this shop's true table is in it, once.
    noise = sum((np.asarray(p.noise) for p in peers.values()), np.asarray(json.loads(round_row["noise"])))
    assert (total - 2 * np.asarray(peer_inputs) - noise == expected).all()
    spends = query_spends(qs, query_id)
    assert len(spends) == 86400 // WINDOW_S  # every window of the range, once
    assert all(e == "" and Fraction(r) >= Fraction(1, 8) and k == accountant.QUERY for e, r, k in spends)
    assert all(Fraction(r) - Fraction(1, 8) < Fraction(1, 10**6) for _e, r, _k in spends)
    ledger = (
        qs.store.conn()
        .execute("SELECT mechanism, parameters FROM release_ledger WHERE stream = ?", (f"query:{query_id}/round",))
        .fetchall()
    )
    assert len(ledger) == 1 and ledger[0][0] == "distributed_discrete_gaussian"
    assert json.loads(ledger[0][1])["credit_cents"] == 250 and json.loads(ledger[0][1])["query_id"] == query_id
    row = licensing_sql.query(qs.store.conn(), query_id)
    assert row is not None and row["status"] == "answered" and row["reason"].endswith("summed")
    assert qs.store.conn().execute("SELECT count(*) FROM outbox").fetchone() == (1,)  # the acceptance alone


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"rho_num": 1, "rho_den": 4}, "allows at most 1/8"),  # more rho than the query's epsilon^2 / 2
        ({"windows": ()}, "not query"),  # other cells than the query's table
        ({"sensitivity": 0}, "sensitivity"),
    ],
)
def test_a_round_that_is_not_the_accepted_query_is_refused_before_any_advert(
    qs: QuerySetup, change: dict[str, object], why: str
) -> None:
    query_id = qs.ask()
    config = qs.round_for(query_id, **change)
    if "windows" in change:
        cells = qs.round_for(query_id).windows
        config = dataclasses.replace(config, windows=(*cells[1:], cells[0]))
    feed(qs.participant(), secagg_hub_topic("riverside", config.round_id, "config"), RoundOpening(config, qs.roster))
    assert qs.sent == []  # not even a key advert
    assert why in state(qs, config.round_id)["reason"]
    assert query_spends(qs, query_id) == []


def test_a_query_answered_alone_or_refused_cannot_be_entered_into_a_round(qs: QuerySetup) -> None:
    query_id = qs.ask(combine="")  # answered on its own
    config = qs.round_for(query_id)
    feed(qs.participant(), secagg_hub_topic("riverside", config.round_id, "config"), RoundOpening(config, qs.roster))
    assert qs.sent == [] and "not accepted for a round" in state(qs, config.round_id)["reason"]


def test_the_filter_decides_again_when_the_input_is_masked(qs: QuerySetup) -> None:
    """Another release takes the budget between acceptance and the round: no input leaves, nothing is spent."""
    query_id = qs.ask()
    with qs.store.transaction() as conn:  # a window of the range is now full (rho budget 1)
        from tests.agent.coop.test_round_participant import ledger, releases

        row: dict[str, typing.Any] = {
            "window_start_ns": DAY_START_S * NS_PER_S, "window_end_ns": (DAY_START_S + WINDOW_S) * NS_PER_S,
            "stream": "other", "noisy_values": "{}", "mechanism": "discrete_gaussian", "parameters": "{}",
            "epsilon": "rho=1", "sampler_version": "test", "released_wall_ns": 1,
        }  # fmt: skip
        row["prev_hash"] = ledger.last_hash(conn)
        row["hash"] = ledger.row_hash(row["prev_hash"], row)
        ledger_id = releases.insert_ledger_row(conn, row)
        releases.insert_spend(conn, DAY_START_S * NS_PER_S, "other", DOOR_EVENT, "", "1", ledger_id)
    run_round(qs, qs.participant(), qs.round_for(query_id), [0] * 168)  # t = 2: the peers finish it alone
    assert qs.sent_of("input") == [] and len(qs.sent_of("shares")) == 1
    assert "over the budget" in state(qs, f"query-{query_id}")["reason"]
    assert query_spends(qs, query_id) == []
    row_after = licensing_sql.query(qs.store.conn(), query_id)
    assert row_after is not None and row_after["status"] == "accepted"  # the input never left


def test_a_district_query_at_a_shop_without_secure_aggregation_is_refused(tmp_path: Path) -> None:
    from tests.agent.licensing.test_desk import shop

    cfg = shop(tmp_path)
    store = Store(cfg.db_path)
    message = signed_query(DAY_END_NS + 86400 * NS_PER_S, combine=SECURE_AGGREGATION)
    assert inbox.receive(store, "riverside", _coop_key(), encode(message), Clock().wall_ns()) == "stored"
    journal = ReleaseJournal(cfg.data_dir / JOURNAL_NAME)
    LicensingDesk(cfg, store, typing.cast(AgentClock, Clock()), journal, CountingBits()).tick()
    row = licensing_sql.query(store.conn(), str(message["query"]["id"]))  # type: ignore[index]
    assert row is not None and row["status"] == "refused" and "no district figures" in row["reason"]


def test_a_lost_database_keeps_the_rounds_charge_from_the_journal(qs: QuerySetup) -> None:
    """The acceptance and the round's row are journaled before COMMIT: a lost database gets the charge back,
    so the range's windows still count the round against their lifetime budget."""
    from agent.privacy.reconcile import reconcile

    query_id = qs.ask()
    run_round(qs, qs.participant(), qs.round_for(query_id), [0] * 168)
    journaled = [e.key for e in qs.journal.read(repair=False)]
    day_start = DAY_START_S * NS_PER_S
    assert journaled == [(day_start, f"query:{query_id}"), (day_start, f"query:{query_id}/round")]
    charged = query_spends(qs, query_id)
    qs.store.close()
    qs.config.db_path.unlink()
    for suffix in ("-wal", "-shm"):
        Path(f"{qs.config.db_path}{suffix}").unlink(missing_ok=True)
    qs.store = Store(qs.config.db_path)
    assert reconcile(qs.store, qs.journal).restored == 2
    assert sorted(query_spends(qs, query_id)) == sorted(charged) and len(charged) == 86400 // WINDOW_S


def test_queries_list_names_the_district_figure_and_what_the_box_earned(
    qs: QuerySetup, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from agent.licensing import cli

    query_id = qs.ask()
    run_round(qs, qs.participant(), qs.round_for(query_id), [0] * 168)
    args = argparse.Namespace(action="list", config=str(qs.config.path), query_id=None, reason="", json=False)
    assert cli.run(args) == 0
    out = capsys.readouterr().out
    assert f"{query_id}  answered" in out and "(district figure, by secure aggregation)" in out
    assert out.strip().endswith("earned 2.50 from 1 answered query")
    assert cli.run(argparse.Namespace(**{**vars(args), "json": True})) == 0
    assert json.loads(capsys.readouterr().out)[0]["combine"] == SECURE_AGGREGATION


def test_a_query_enters_one_round_only(qs: QuerySetup) -> None:
    """The query-level differencing trap: two sums over shop sets that differ by this shop would give away its
    table, so a second round for the same query is refused before any advert, whatever its id."""
    query_id = qs.ask()
    run_round(qs, qs.participant(), qs.round_for(query_id), [0] * 168)
    qs.sent.clear()
    again = qs.round_for(query_id, round_id=f"query-{query_id}-again")
    feed(qs.participant(), secagg_hub_topic("riverside", again.round_id, "config"), RoundOpening(again, qs.roster))
    assert qs.sent == [] and "is answered here, not accepted for a round" in state(qs, again.round_id)["reason"]
    assert len(query_spends(qs, query_id)) == 86400 // WINDOW_S  # charged once
