"""District licensing queries on the hub (SQLite and PostgreSQL): the round is planned only once every enrolled
shop has replied (or the wait is over), over the shops that accepted; it is settled when it ends (summed shops
answered and owed the credit, the others not); the district answer is the round's sum with its Gaussian bound;
a shop's own answer to a district query is discarded, never stored."""

from __future__ import annotations

import json
import time
from fractions import Fraction
from typing import Any

from agent.contract.licensing import SECURE_AGGREGATION, answer_topic, gaussian_tail
from agent.coop.secagg.messages import Member, Roster
from agent.coop.secagg.transport import parse_cell
from hub import licensing, licensing_rounds, secagg_store
from hub.db import Connection
from tests.licensing_kit import COOP_KEY

COOP = "riverside"
SHOPS = ("shop-a", "shop-b", "shop-c", "shop-d")
ROSTER = Roster(COOP, tuple(Member(s, bytes([i + 1]) * 32) for i, s in enumerate(SHOPS)))
KEYS = ["mon-00", "mon-01"]


def asked(conn: Connection, combine: str = SECURE_AGGREGATION) -> str:
    message = licensing.compose(
        COOP, COOP_KEY, "footfall_hour_of_week", {"start": "2026-11-02", "end": "2026-11-03"}, "coop", "study",
        Fraction(1, 2), 300, time.time_ns() + 10**12, combine,
    )  # fmt: skip
    with conn.transaction():
        licensing.record_query(conn, message)
    return str(message["query"]["id"])


def reply(conn: Connection, store: str, query_id: str, status: str, **over: Any) -> str | None:
    doc: dict[str, Any] = {
        "schema": "shopkeeper.licensing.answer/1",
        "store": store,
        "query_id": query_id,
        "status": status,
        "reason": "" if status != "refused" else "this shop does not answer queries from 'coop'",
        "values": None,
        "keys": KEYS,
        "privacy": {"round_rho": "1/8", "l2_sensitivity": 1, "unit": "door event"},
        **over,
    }
    with conn.transaction():
        return licensing.record_answer(conn, COOP, answer_topic(COOP, store), json.dumps(doc).encode())


def plan(conn: Connection, now: float | None = None, wait_s: float = 3600.0) -> list[str]:
    with conn.transaction():
        return licensing_rounds.plan_due(conn, ROSTER, wait_s, time.time() if now is None else now)


def statuses(conn: Connection, query_id: str) -> dict[str, tuple[str, int]]:
    rows = conn.query("SELECT store, status, credit_cents FROM licensing_answers WHERE query_id = ?", (query_id,))
    return {str(s): (str(st), int(c)) for s, st, c in rows}


def test_the_round_waits_for_every_shop_then_takes_those_that_accepted(conn: Connection) -> None:
    query_id = asked(conn)
    for shop in ("shop-a", "shop-b", "shop-c"):
        assert reply(conn, shop, query_id, "accepted") is None
    assert plan(conn) == []  # shop-d has not replied and the wait is not over
    assert reply(conn, "shop-d", query_id, "refused") is None
    assert plan(conn) == [f"query-{query_id}"]
    assert plan(conn) == []  # once
    planned = secagg_store.next_planned(conn)
    assert planned is not None and planned.participants == ("shop-a", "shop-b", "shop-c")
    assert planned.threshold == 2 and planned.rho == Fraction(1, 8) and planned.sensitivity == 1
    assert [parse_cell(c).key for c in planned.cells] == KEYS
    assert {parse_cell(c).window_s for c in planned.cells} == {86400}

    # Released with shop-a and shop-b summed: they answered and are owed; shop-c left before the sum.
    with conn.transaction():
        secagg_store.store_totals(conn, planned.round_id, planned.cells, [40, 7], 24.0, 2)
        licensing_rounds.round_ended(conn, planned, "released", ("shop-a", "shop-b"), "summed 2")
    assert statuses(conn, query_id) == {
        "shop-a": ("answered", 300), "shop-b": ("answered", 300), "shop-c": ("not_combined", 0),
        "shop-d": ("refused", 0),
    }  # fmt: skip
    district = licensing.district_answer(conn, query_id, 1e-9)
    assert district["values"] == {"mon-00": 40, "mon-01": 7} and district["shops"] == ["shop-a", "shop-b"]
    assert district["noise_bound"] == gaussian_tail(24.0, 2, 1e-9) and district["noise_bound"] > 0
    assert set(district["refused"]) == {"shop-c", "shop-d"}
    assert licensing.statement(conn)["shop-a"]["credit_cents"] == 300


def test_an_aborted_round_is_tried_once_more_then_owes_nothing(conn: Connection) -> None:
    query_id = asked(conn)
    for shop in SHOPS:
        reply(conn, shop, query_id, "accepted")
    assert plan(conn) == [f"query-{query_id}"]
    first = secagg_store.next_planned(conn)
    assert first is not None and first.threshold == 3  # ceil(2 * 4 / 3): more than half
    with conn.transaction():
        secagg_store.finish(conn, first.round_id, "aborted", "only 2 shops advertised keys; threshold 3", None)
        licensing_rounds.round_ended(conn, first, "aborted", (), "only 2 shops advertised keys; threshold 3")
    assert all(v == ("accepted", 0) for v in statuses(conn, query_id).values())  # still waiting
    assert "planned again" in licensing.district_answer(conn, query_id)["round"]
    assert plan(conn) == [f"query-{query_id}-2"]  # an abort revealed nothing: a second round is safe
    second = secagg_store.next_planned(conn)
    assert second is not None and second.round_id == f"query-{query_id}-2"
    with conn.transaction():
        licensing_rounds.round_ended(conn, second, "aborted", (), "only 1 shop advertised keys")
    assert all(v == ("not_combined", 0) for v in statuses(conn, query_id).values())
    assert "aborted" in licensing.district_answer(conn, query_id)["round"]
    assert plan(conn) == []  # MAX_ATTEMPTS rounds in all


def test_after_the_wait_the_round_goes_ahead_without_the_silent_shops(conn: Connection) -> None:
    query_id = asked(conn)
    reply(conn, "shop-a", query_id, "accepted")
    reply(conn, "shop-b", query_id, "accepted")
    assert plan(conn, wait_s=60) == []
    assert plan(conn, now=time.time() + 61, wait_s=60) == [f"query-{query_id}"]


def test_too_few_acceptances_plan_no_round_and_say_why(conn: Connection) -> None:
    query_id = asked(conn)
    reply(conn, "shop-a", query_id, "accepted")
    for shop in SHOPS[1:]:
        reply(conn, shop, query_id, "refused")
    assert plan(conn) == [] and secagg_store.next_planned(conn) is None
    assert "1 shop(s) accepted" in licensing.district_answer(conn, query_id)["round"]
    assert statuses(conn, query_id)["shop-a"] == ("not_combined", 0)


def test_a_shop_with_other_keys_is_left_out_rather_than_break_the_round(conn: Connection) -> None:
    query_id = asked(conn)
    for shop in SHOPS[:3]:
        reply(conn, shop, query_id, "accepted")
    reply(conn, "shop-d", query_id, "accepted", keys=["other"])
    plan(conn)
    planned = secagg_store.next_planned(conn)
    assert planned is not None and planned.participants == SHOPS[:3]


def test_a_shops_own_answer_to_a_district_query_is_discarded_unstored(conn: Connection) -> None:
    query_id = asked(conn)
    why = reply(conn, "shop-a", query_id, "answered", values={"mon-00": 12}, privacy={"epsilon_exact": "1/2"})
    assert why is not None and "discarded" in why
    stored = conn.query("SELECT status, answer_values FROM licensing_answers WHERE query_id = ?", (query_id,))
    assert stored == [("refused", None)]


def test_acceptance_of_a_query_answered_alone_is_refused(conn: Connection) -> None:
    query_id = asked(conn, combine="")
    assert reply(conn, "shop-a", query_id, "accepted") == "accepted a query that is not combined by secure aggregation"
    assert conn.query("SELECT count(*) FROM licensing_answers")[0][0] == 0
