"""The coop's licensing tables on SQLite and PostgreSQL: answers once per shop, the district sum and its
noise bound, the statement of credits, hostile answers refused with one reason each."""

from __future__ import annotations

import json
import time
from fractions import Fraction
from typing import Any

from agent.contract.licensing import answer_topic, district_noise_bound, laplace_tail
from hub import licensing
from hub.db import Connection
from tests.licensing_kit import COOP_KEY

COOP = "riverside"


def asked(conn: Connection, credit: int = 300) -> str:
    message = licensing.compose(
        COOP, COOP_KEY, "footfall_hour_of_week", {"start": "2026-11-02", "end": "2026-11-09"}, "coop", "study",
        Fraction(1, 2), credit, time.time_ns() + 10**12,
    )  # fmt: skip
    with conn.transaction():
        licensing.record_query(conn, message)
    return str(message["query"]["id"])


def answer(store: str, query_id: str, status: str = "answered", **over: Any) -> tuple[str, bytes]:
    doc: dict[str, Any] = {
        "schema": "shopkeeper.licensing.answer/1",
        "store": store,
        "query_id": query_id,
        "status": status,
        "reason": "" if status == "answered" else "this shop does not answer queries from 'coop'",
        "values": {"mon-09": 10, "mon-10": -2} if status == "answered" else None,
        "credit_cents": 999999,  # what a shop claims is never what the coop owes
        "privacy": {"epsilon_exact": "1/2", "noise_scale_exact": "2"} if status == "answered" else None,
        **over,
    }
    return answer_topic(COOP, store), json.dumps(doc).encode()


def record(conn: Connection, topic: str, payload: bytes) -> str | None:
    with conn.transaction():
        return licensing.record_answer(conn, COOP, topic, payload)


def test_district_answer_statement_and_duplicates(conn: Connection) -> None:
    query_id = asked(conn)
    for store in ("shop-a", "shop-b"):
        assert record(conn, *answer(store, query_id)) is None
    assert record(conn, *answer("shop-a", query_id, values={"mon-09": 1000})) is None  # a duplicate: kept once
    assert record(conn, *answer("shop-c", query_id, "refused")) is None
    district = licensing.district_answer(conn, query_id, 1e-9)
    assert district["values"] == {"mon-09": 20, "mon-10": -4} and district["shops"] == ["shop-a", "shop-b"]
    assert district["noise_bound"] == district_noise_bound([2.0, 2.0], 2, 1e-9) == 2 * laplace_tail(2.0, 2, 5e-10)
    assert district["refused"] == {"shop-c": "this shop does not answer queries from 'coop'"}
    owed = licensing.statement(conn)
    assert owed["shop-a"]["credit_cents"] == 300 and owed["shop-c"]["credit_cents"] == 0
    assert owed["shop-c"]["refused"][0]["reason"].startswith("this shop does not answer")
    assert licensing.statement(conn, "shop-b") == {"shop-b": owed["shop-b"]}


def test_hostile_answers_are_refused_with_one_reason(conn: Connection) -> None:
    query_id = asked(conn)
    topic, good = answer("shop-a", query_id)
    assert record(conn, answer_topic(COOP, "shop-b"), good) == "payload names another store than its topic"
    assert record(conn, *answer("shop-a", "f" * 32)) == "answer to a query this hub did not ask"
    assert record(conn, *answer("shop-a", query_id, values={"mon-09": "many"})) == (
        "values must be an object of whole numbers"
    )
    eps = {"epsilon_exact": "5", "noise_scale_exact": "1/5"}
    assert record(conn, *answer("shop-a", query_id, privacy=eps)) == "answered with another epsilon than asked"
    assert record(conn, topic, b"{not json") == "malformed answer (JSONDecodeError)"
    assert conn.query("SELECT count(*) FROM licensing_answers")[0][0] == 0


def test_the_noise_bound_holds_for_laplace_tails() -> None:
    # P(|X| >= k) = 2 q^k / (1 + q) for discrete Laplace; the tail must be at or below the share of beta.
    import math

    for scale, cells, beta in ((1.0, 168, 1e-9), (2.0, 7, 1e-6), (0.5, 12, 1e-3)):
        k = laplace_tail(scale, cells, beta)
        q = math.exp(-1 / scale)
        assert cells * 2 * q**k / (1 + q) <= beta < cells * 2 * q ** (k - 1) / (1 + q)
