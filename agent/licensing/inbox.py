"""Queries arriving from the coop: verified, then stored once; everything else refused, logged and counted.

A query is considered only when the coop's Ed25519 key signed exactly its bytes (forged or altered:
refused), it names this coop, it has not expired, and its id and nonce were never seen (replayed:
refused; the nonce is UNIQUE in SQLite, so a replay is refused even across restarts). None of these
refusals is answered on MQTT: a forged message must not be able to make the box send anything. Each is
one log line (at most one per reason a minute), a counter `licensing_refused_<reason>` in /metrics, and
the newest one shown in /health. Policy refusals (kind, requester, epsilon) are answered: see desk.py.
"""

from __future__ import annotations

import json
import logging
import time
from fractions import Fraction
from typing import Any

from agent.clock import NS_PER_S
from agent.contract import parse_iso
from agent.contract.licensing import QUERY_SCHEMA, verify
from agent.licensing.catalogue import SECURE_AGGREGATION, BadQuery, Query, query_range
from agent.store import Store
from agent.store import licensing as licensing_sql

log = logging.getLogger(__name__)

MAX_QUERY_BYTES = 16 * 1024
MAX_TEXT = 200
FORGED, REPLAYED, EXPIRED, MALFORMED = "forged", "replayed", "expired", "malformed"
_last_logged: dict[str, float] = {}


class Refused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def parse_query(doc: dict[str, Any], coop: str) -> Query:
    """The verified fields of a query object (signature checked by the caller); Refused(MALFORMED) if bad."""
    try:
        if doc.get("schema") != QUERY_SCHEMA:
            raise Refused(MALFORMED, f"schema is not {QUERY_SCHEMA}")
        if doc.get("coop") != coop:
            raise Refused(MALFORMED, "the query is for another coop")
        epsilon = Fraction(str(doc["epsilon"]))
        if not 0 < epsilon <= 10:
            raise Refused(MALFORMED, "epsilon must be in (0, 10]")
        credit = doc["credit_cents"]
        if not isinstance(credit, int) or isinstance(credit, bool) or not 0 <= credit <= 10**9:
            raise Refused(MALFORMED, "credit_cents must be a whole number of cents")
        texts = {k: doc[k] for k in ("id", "requester", "purpose", "nonce", "kind")}
        if not all(isinstance(v, str) and 0 < len(v) <= MAX_TEXT for v in texts.values()):
            raise Refused(MALFORMED, "id, requester, purpose, nonce and kind must be short strings")
        if len(texts["nonce"]) < 16:
            raise Refused(MALFORMED, "the nonce is shorter than 16 characters")
        start_ns, end_ns = query_range(texts["kind"], doc["params"])
        expires_ns = parse_iso(str(doc["expires"])) * NS_PER_S
        combine = doc.get("combine", "")
        if combine not in ("", SECURE_AGGREGATION):
            raise Refused(MALFORMED, f"combine must be absent or {SECURE_AGGREGATION!r}")
    except BadQuery as exc:
        raise Refused(MALFORMED, str(exc)) from None
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        raise Refused(MALFORMED, f"missing or wrong field ({exc})") from None
    return Query(
        query_id=texts["id"],
        kind=texts["kind"],
        params={str(k): str(v) for k, v in doc["params"].items()},
        requester=texts["requester"],
        purpose=texts["purpose"],
        epsilon=epsilon,
        credit_cents=credit,
        expires_ns=expires_ns,
        nonce=texts["nonce"],
        start_ns=start_ns,
        end_ns=end_ns,
        combine=combine,
    )


def receive(store: Store, coop: str, public_key: bytes, payload: bytes, now_ns: int) -> str:
    """Verify and store one query message; returns "stored" or the refusal's reason."""
    try:
        if len(payload) > MAX_QUERY_BYTES:
            raise Refused(MALFORMED, f"larger than {MAX_QUERY_BYTES} bytes")
        try:
            message = json.loads(payload)
            doc, signature = message["query"], message["signature"]
        except (ValueError, KeyError, TypeError):
            raise Refused(MALFORMED, "not a JSON object with query and signature") from None
        if not isinstance(doc, dict) or not isinstance(signature, str) or not verify(public_key, doc, signature):
            raise Refused(FORGED, "the signature is not the coop's")
        query = parse_query(doc, coop)
        if query.expires_ns <= now_ns:
            raise Refused(EXPIRED, f"query {query.query_id} expired at {doc['expires']}")
        row = {
            "query_id": query.query_id,
            "nonce": query.nonce,
            "kind": query.kind,
            "params": json.dumps(query.params, sort_keys=True),
            "requester": query.requester,
            "purpose": query.purpose,
            "epsilon": str(query.epsilon),
            "credit_cents": query.credit_cents,
            "expires_wall_ns": query.expires_ns,
            "signed": payload.decode(),
            "received_wall_ns": now_ns,
            "status": "received",
        }
        with store.transaction() as conn:
            if not licensing_sql.insert_query(conn, row):
                raise Refused(REPLAYED, f"query {query.query_id} (or its nonce) was seen before")
    except Refused as refused:
        _count(store, refused, now_ns)
        return refused.reason
    log.info("licensing query %s (%s from %s) received", query.query_id, query.kind, query.requester)
    return "stored"


def _count(store: Store, refused: Refused, now_ns: int) -> None:
    with store.transaction() as conn:
        Store.bump_counter(conn, f"licensing_refused_{refused.reason}")
        Store.set_state(
            conn,
            "licensing_last_refusal",
            json.dumps({"reason": refused.reason, "detail": refused.detail, "wall_ns": now_ns}),
        )
    now = time.monotonic()
    if now - _last_logged.get(refused.reason, -1e9) >= 60:
        _last_logged[refused.reason] = now
        log.warning("refused a licensing query (%s): %s; not answered, counted", refused.reason, refused.detail)


def query_from_row(row: dict[str, Any]) -> Query:
    """A stored query back as a Query (it was verified before it was stored)."""
    params = json.loads(row["params"])
    start_ns, end_ns = query_range(row["kind"], params)
    # `combine` is read back from the signed message itself (verified when it was stored), not a column.
    combine = str(json.loads(row["signed"])["query"].get("combine", ""))
    return Query(
        query_id=row["query_id"],
        kind=row["kind"],
        params=params,
        requester=row["requester"],
        purpose=row["purpose"],
        epsilon=Fraction(row["epsilon"]),
        credit_cents=int(row["credit_cents"]),
        expires_ns=int(row["expires_wall_ns"]),
        nonce=row["nonce"],
        start_ns=start_ns,
        end_ns=end_ns,
        combine=combine,
    )
