"""The coop's side of data licensing (docs/licensing.md): compose and sign a query, collect the shops' answers,
the district answer with its noise bound, and what the coop owes each shop (SQLite and PostgreSQL).

Two ways to a district answer:
- each shop answers on its own, and the district answer is the plain sum of the shops' noised answers: each
  shop's noise is independent discrete Laplace with the scale it states, so the sum is within
  `district_noise_bound` of the true district total with the stated probability; the coop sees each answer;
- `combine = secure_aggregation`: each shop only accepts (or refuses), the hub runs one secure-aggregation
  round over the query's table (hub/licensing_rounds.py), and sees only the sum of the accepting shops'
  true tables plus their distributed discrete Gaussian noise, never one shop's answer; the bound is
  `gaussian_tail` of the round's stated noise variance.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from fractions import Fraction
from typing import Any

from agent.contract import iso_utc
from agent.contract.licensing import (
    ACCEPTED,
    ANSWER_SCHEMA,
    ANSWERED,
    QUERY_SCHEMA,
    REFUSED,
    SECURE_AGGREGATION,
    answer_store,
    district_noise_bound,
    gaussian_tail,
    sign,
)
from hub.db import Connection

MAX_ANSWER_BYTES = 64 * 1024
MAX_CELLS = 400
DEFAULT_FAILURE_PROBABILITY = 1e-9


def compose(
    coop: str,
    private_key: bytes,
    kind: str,
    params: dict[str, str],
    requester: str,
    purpose: str,
    epsilon: Fraction,
    credit_cents: int,
    expires_ns: int,
    combine: str = "",
) -> dict[str, Any]:
    """A signed query message: {"query": {...}, "signature": base64}, with a fresh id and nonce.

    `combine = "secure_aggregation"` asks for a district figure by secure aggregation (signed with the rest).
    """
    query = {
        "schema": QUERY_SCHEMA,
        "id": uuid.uuid4().hex,
        "coop": coop,
        "kind": kind,
        "params": params,
        "requester": requester,
        "purpose": purpose,
        "epsilon": str(epsilon),
        "credit_cents": int(credit_cents),
        "expires": iso_utc(expires_ns),
        "nonce": secrets.token_hex(16),
    }
    if combine:
        query["combine"] = combine
    return {"query": query, "signature": sign(private_key, query)}


def record_query(conn: Connection, message: dict[str, Any]) -> None:
    """Keep the query the hub published (its answers are checked against it)."""
    q = message["query"]
    conn.execute(
        "INSERT INTO licensing_queries (query_id, kind, params, requester, purpose, epsilon, credit_cents, expires,"
        " nonce, signed, created_at, combine) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            q["id"],
            q["kind"],
            json.dumps(q["params"], sort_keys=True),
            q["requester"],
            q["purpose"],
            q["epsilon"],
            q["credit_cents"],
            q["expires"],
            q["nonce"],
            json.dumps(message, sort_keys=True),
            time.time(),
            str(q.get("combine", "")),
        ),
    )


def record_answer(conn: Connection, coop: str, topic: str, payload: bytes) -> str | None:
    """Store one shop's answer or refusal once; returns why it was refused (None when stored or a duplicate)."""
    store = answer_store(coop, topic)
    if store is None:
        return "not a licensing answer topic"
    if len(payload) > MAX_ANSWER_BYTES:
        return f"answer larger than {MAX_ANSWER_BYTES} bytes"
    try:
        doc = json.loads(payload)
        if not isinstance(doc, dict) or doc.get("schema") != ANSWER_SCHEMA:
            return f"payload is not a {ANSWER_SCHEMA} object"
        if doc.get("store") != store:  # a message's store is the store of its topic
            return "payload names another store than its topic"
        status, query_id = doc["status"], str(doc["query_id"])
        if status not in (ANSWERED, REFUSED, ACCEPTED):
            return "status is neither answered, accepted nor refused"
        asked = conn.query(
            "SELECT epsilon, credit_cents, combine FROM licensing_queries WHERE query_id = ?", (query_id,)
        )
        if not asked:
            return "answer to a query this hub did not ask"
        district = asked[0][2] == SECURE_AGGREGATION
        values: Any = None
        scale = None
        if district and status == ANSWERED:
            # A box that answered alone (one that does not know `combine`): its values are dropped unstored, so
            # the coop never holds one shop's answer to a district query; it counts as that shop's refusal.
            reason = "answered on its own to a district query; its values were discarded, not stored"
            _insert_answer(conn, query_id, store, REFUSED, reason, None, None, 0)
            return reason
        if status == ACCEPTED:
            if not district:
                return "accepted a query that is not combined by secure aggregation"
            keys, l2 = doc["keys"], doc["privacy"]["l2_sensitivity"]
            if (
                not isinstance(keys, list)
                or not 0 < len(keys) <= MAX_CELLS
                or not all(isinstance(k, str) for k in keys)
            ):
                return "keys must be a list of the table's key names"
            if not isinstance(l2, int) or isinstance(l2, bool) or not 1 <= l2 <= MAX_CELLS:
                return "l2_sensitivity must be a whole number"
            values = {"keys": keys, "l2_sensitivity": l2}
        elif status == ANSWERED:
            values = doc["values"]
            ok = isinstance(values, dict) and 0 < len(values) <= MAX_CELLS
            if not ok or not all(isinstance(v, int) and not isinstance(v, bool) for v in values.values()):
                return "values must be an object of whole numbers"
            if doc["privacy"]["epsilon_exact"] != asked[0][0]:
                return "answered with another epsilon than asked"
            scale = float(Fraction(str(doc["privacy"]["noise_scale_exact"])))
        reason = str(doc.get("reason", ""))[:500]
    except (ValueError, KeyError, TypeError, ZeroDivisionError) as exc:
        return f"malformed answer ({type(exc).__name__})"
    # The coop owes what it offered, for an answer only; the shop's own figure is not trusted for money. A
    # district query's credit is owed once the round has summed the shop's input (hub/licensing_rounds.py).
    credit = int(asked[0][1]) if status == ANSWERED else 0
    _insert_answer(conn, query_id, store, status, reason, values, scale, credit)
    return None


def _insert_answer(
    conn: Connection,
    query_id: str,
    store: str,
    status: str,
    reason: str,
    values: Any,
    scale: float | None,
    credit: int,
) -> None:
    conn.execute(
        "INSERT INTO licensing_answers (query_id, store, status, reason, answer_values, noise_scale, credit_cents,"
        " received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (query_id, store) DO NOTHING",
        (query_id, store, status, reason, None if values is None else json.dumps(values), scale, credit, time.time()),
    )


def district_answer(
    conn: Connection, query_id: str, failure_probability: float = DEFAULT_FAILURE_PROBABILITY
) -> dict[str, Any]:
    """The sum of the shops' noised answers (or the secure round's sum), its noise bound, and who refused why."""
    asked = conn.query("SELECT combine, round_id, district_note FROM licensing_queries WHERE query_id = ?", (query_id,))
    if asked and asked[0][0] == SECURE_AGGREGATION:
        return _secure_district_answer(conn, query_id, asked[0][1], str(asked[0][2]), failure_probability)
    rows = conn.query(
        "SELECT store, status, reason, answer_values, noise_scale FROM licensing_answers WHERE query_id = ?"
        " ORDER BY store",
        (query_id,),
    )
    totals: dict[str, int] = {}
    scales: list[float] = []
    answered, refused = [], {}
    for store, status, reason, values, scale in rows:
        if status != ANSWERED:
            refused[store] = reason
            continue
        answered.append(store)
        scales.append(float(scale))
        for key, value in json.loads(values).items():
            totals[key] = totals.get(key, 0) + int(value)
    cells = max(len(totals), 1)
    return {
        "query_id": query_id,
        "shops": answered,
        "values": totals,
        "noise_bound": district_noise_bound(scales, cells, failure_probability),
        "failure_probability": failure_probability,
        "refused": refused,
    }


def _secure_district_answer(
    conn: Connection, query_id: str, round_id: str | None, note: str, failure_probability: float
) -> dict[str, Any]:
    """The district answer of a query combined by secure aggregation: the round's unmasked sum only."""
    answers = conn.query(
        "SELECT store, status, reason FROM licensing_answers WHERE query_id = ? ORDER BY store", (query_id,)
    )
    totals = conn.query(
        "SELECT key, total, noise_variance FROM secagg_district_totals WHERE round_id = ? ORDER BY key",
        (round_id or "",),
    )
    variance = float(totals[0][2]) if totals else 0.0
    return {
        "query_id": query_id,
        "combine": SECURE_AGGREGATION,
        "round_id": round_id,
        "round": note,
        "shops": [s for s, status, _r in answers if status == ANSWERED],
        "values": {str(k): int(t) for k, t, _v in totals},
        "noise_variance": variance,
        "noise_bound": gaussian_tail(variance, max(len(totals), 1), failure_probability),
        "failure_probability": failure_probability,
        "refused": {s: r for s, status, r in answers if status not in (ANSWERED, ACCEPTED)},
        "waiting": [s for s, status, _r in answers if status == ACCEPTED],
    }


def statement(conn: Connection, store: str | None = None) -> dict[str, dict[str, Any]]:
    """Per shop: its answered queries with their credits, its refusals, and the total the coop owes it."""
    sql = (
        "SELECT a.store, a.query_id, a.status, a.reason, a.credit_cents, q.kind, q.requester, q.epsilon"
        " FROM licensing_answers a JOIN licensing_queries q ON q.query_id = a.query_id"
    )
    args: tuple[Any, ...] = ()
    if store is not None:
        sql += " WHERE a.store = ?"
        args = (store,)
    out: dict[str, dict[str, Any]] = {}
    for shop, query_id, status, reason, credit, kind, requester, epsilon in conn.query(
        sql + " ORDER BY a.store, a.received_at", args
    ):
        entry = out.setdefault(shop, {"answered": [], "refused": [], "credit_cents": 0})
        item = {"query_id": query_id, "kind": kind, "requester": requester, "epsilon": epsilon}
        if status == ANSWERED:
            entry["answered"].append({**item, "credit_cents": int(credit)})
            entry["credit_cents"] += int(credit)
        else:
            entry["refused"].append({**item, "reason": reason})
    return out
