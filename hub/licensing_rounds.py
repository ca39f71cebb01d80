"""District licensing queries combined by secure aggregation: the hub plans one round per query over the
shops that accepted it, and settles each shop's answer and credit when the round ends (docs/licensing.md).

When. A query with `combine = secure_aggregation` gets its round once every enrolled shop has accepted or
refused it, or `[secagg] licensing_wait_s` after it was asked (a box that is away is then left out).

The round. Its cells are the query's table, `query:<id>|<key>|count|<range start>|<range length>`, one per
public key the accepting shops sent (they must all send the same keys: a shop with other keys, another
taxonomy, is left out rather than let it break the round). The participants are the accepting shops; the
threshold is max(2, ceil(2k/3)) of k participants, which is more than half, so the hub can assemble only one
survivor set (as for the coop's footfall rounds), and assumes no colluder. The round's rho is the query's
epsilon^2 / 2 and its sensitivity the largest L2 sensitivity any accepting shop declared; every shop checks
both against the query it accepted (agent/coop/query_round.py), so the hub cannot ask more than the shops
agreed to. Each cell is clamped at the shops to QUERY_VALUE_BOUND.

Settling. Released: the shops whose input was summed have answered and are owed the query's credit; an
accepting shop that dropped out is `not_combined`, owed nothing. Aborted or refused: the query is planned
again once (MAX_ATTEMPTS rounds in all, each with its own id) while it has not expired, because an abort
reveals nothing, so a second round over the shops still waiting cannot be differenced against the first; a
shop whose input left in the first round is answered there and refuses the second. After the last attempt
every accepting shop is `not_combined` (nothing was revealed); the query's note says why.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from fractions import Fraction

from agent.contract import parse_iso
from agent.contract.licensing import ACCEPTED, ANSWERED, COUNT_FIELD, SECURE_AGGREGATION, query_range
from agent.contract.windows import NS_PER_S
from agent.coop.secagg.messages import Roster
from agent.coop.secagg.transport import Cell
from hub.db import Connection
from hub.secagg_store import PlannedRound, plan_round

#: Each cell of a shop's table is clamped to this before it is masked (a year of one shop's busiest
#: hour-of-week cell is far below it), and with it the sum cannot wrap around mod 2**64 (noise.check_headroom).
QUERY_VALUE_BOUND = 10_000_000
NOT_COMBINED = "not_combined"
MIN_SHOPS = 2
MAX_ATTEMPTS = 2


def round_id_of(query_id: str, attempt: int = 1) -> str:
    return f"query-{query_id}" if attempt == 1 else f"query-{query_id}-{attempt}"


def attempts_of(conn: Connection, query_id: str) -> int:
    return int(conn.query("SELECT count(*) FROM secagg_rounds WHERE stream = ?", (f"query:{query_id}",))[0][0])


def threshold_for(participants: int) -> int:
    """More than half of the participants, and at least two (docstring)."""
    return max(MIN_SHOPS, math.ceil(2 * participants / 3))


def plan_due(conn: Connection, roster: Roster, wait_s: float, now: float) -> list[str]:
    """Plan the round of every district query that is ready (docstring); returns the round ids planned."""
    members = {m.shop_id for m in roster.members}
    planned = []
    for query_id, kind, params, epsilon, created, expires in conn.query(
        "SELECT query_id, kind, params, epsilon, created_at, expires FROM licensing_queries"
        " WHERE combine = ? AND round_id IS NULL",
        (SECURE_AGGREGATION,),
    ):
        replies = {
            str(store): (str(status), values)
            for store, status, values in conn.query(
                "SELECT store, status, answer_values FROM licensing_answers WHERE query_id = ?", (query_id,)
            )
            if store in members
        }
        if set(replies) != members and now < float(created) + wait_s and now < parse_iso(str(expires)):
            continue
        accepted = {s: json.loads(v) for s, (status, v) in replies.items() if status == ACCEPTED}
        keys_seen = Counter(tuple(doc["keys"]) for doc in accepted.values())
        keys = keys_seen.most_common(1)[0][0] if keys_seen else ()
        shops = sorted(s for s, doc in accepted.items() if tuple(doc["keys"]) == keys)
        if now >= parse_iso(str(expires)) or len(shops) < MIN_SHOPS:
            why = "the query expired" if now >= parse_iso(str(expires)) else f"{len(shops)} shop(s) accepted"
            _note(conn, query_id, "", f"no round: {why}; {MIN_SHOPS} are needed")
            _settle(conn, query_id, [], f"no round: {why}")
            continue
        start_ns, end_ns = query_range(str(kind), json.loads(params))
        start_s, length_s = start_ns // NS_PER_S, (end_ns - start_ns) // NS_PER_S
        stream = f"query:{query_id}"
        round_id = round_id_of(str(query_id), attempts_of(conn, str(query_id)) + 1)
        plan_round(
            conn,
            PlannedRound(
                round_id=round_id,
                stream=stream,
                cells=tuple(Cell(stream, key, COUNT_FIELD, start_s, length_s).name for key in keys),
                threshold=threshold_for(len(shops)),
                value_bound=QUERY_VALUE_BOUND,
                sensitivity=max(int(accepted[s]["l2_sensitivity"]) for s in shops),
                rho=Fraction(str(epsilon)) ** 2 / 2,
                colluders=0,
                neighbours=0,
                participants=tuple(shops),
            ),
        )
        _note(conn, query_id, round_id, f"round planned with {len(shops)} shops")
        planned.append(round_id)
    return planned


def round_ended(conn: Connection, planned: PlannedRound, status: str, survivors: tuple[str, ...], reason: str) -> None:
    """Settle a district query's answers when its round ends (in the round's own transaction)."""
    if not planned.stream.startswith("query:"):
        return
    query_id = planned.stream[len("query:") :]
    expires = conn.query("SELECT expires FROM licensing_queries WHERE query_id = ?", (query_id,))
    live = bool(expires) and time.time() < parse_iso(str(expires[0][0]))
    if status != "released" and live and attempts_of(conn, query_id) < MAX_ATTEMPTS:
        conn.execute(  # planned again by plan_due, over the shops still waiting (docstring)
            "UPDATE licensing_queries SET round_id = NULL, district_note = ? WHERE query_id = ?",
            (f"round {status}: {reason}; planned again"[:500], query_id),
        )
        return
    _note(conn, query_id, planned.round_id, f"round {status}: {reason}"[:500])
    summed = list(survivors) if status == "released" else []
    _settle(conn, query_id, summed, f"the round was {status}: {reason}")


def _settle(conn: Connection, query_id: str, summed: list[str], reason: str) -> None:
    """Summed shops answered and are owed the credit; every other accepting shop was not combined."""
    credit = conn.query("SELECT credit_cents FROM licensing_queries WHERE query_id = ?", (query_id,))
    owed = int(credit[0][0]) if credit else 0
    for store in summed:
        conn.execute(
            "UPDATE licensing_answers SET status = ?, reason = ?, credit_cents = ? WHERE query_id = ? AND store = ?",
            (ANSWERED, "summed in the district round", owed, query_id, store),
        )
    left_out = "left the round before the sum" if summed else reason
    conn.execute(
        "UPDATE licensing_answers SET status = ?, reason = ? WHERE query_id = ? AND status = ?",
        (NOT_COMBINED, left_out[:500], query_id, ACCEPTED),
    )


def _note(conn: Connection, query_id: str, round_id: str, note: str) -> None:
    conn.execute(
        "UPDATE licensing_queries SET round_id = ?, district_note = ? WHERE query_id = ?",
        (round_id, note[:500], query_id),
    )
