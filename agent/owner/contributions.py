"""The shop's secure-aggregation rounds in plain words, for its page and `shopkeeper ledger`.

"Your Monday 16 Nov 10:00-13:00 was added to the district total; the hub saw only the sum of 18 shops."
Each sentence says what left (a masked input, or nothing), what the hub could learn (only a sum over
that many shops), and what it cost (rho per event in each window, or nothing).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from agent.owner.localtime import LocalZone
from agent.store import secagg as rounds_sql

_STREAM_WORDS = {
    "footfall_store": "footfall",
    "footfall_door": "footfall per door",
    "sales_count": "basket counts",
    "sales_revenue": "category revenue",
}


def _span(zone: LocalZone, row: rounds_sql.RoundRow) -> str:
    # stream|key|field|window_start_s|window_s (agent/coop/secagg/transport.py; parsed here without the
    # coop extra, which the page must not need)
    starts = [int(c.split("|")[3]) for c in row.cells if c.count("|") == 4 and c.split("|")[3].isdigit()]
    if not starts:
        return "an empty span"
    first_ns = min(starts) * 1_000_000_000
    return zone.span(first_ns, max(starts) * 1_000_000_000 + row.window_ns)


def sentence(zone: LocalZone, row: rounds_sql.RoundRow) -> str:
    """One round in words."""
    what = f"your {_span(zone, row)} ({_STREAM_WORDS.get(row.stream, row.stream)})"
    sent = row.input_sent_wall_ns is not None
    if row.state == "released" and row.included:
        return f"{what} was added to the district total; the hub saw only the sum of {row.survivors} shops"
    if row.state == "released":
        return f"{what} was not in the district total (your input did not reach the hub in time); nothing was revealed"
    if row.state == "aborted" and sent:
        return (
            f"{what} went into a round that stopped before anything was revealed ({row.reason}); those windows are"
            " spent and never go into another round"
        )
    if row.state in ("aborted", "refused") and not sent:
        verb = "refused" if row.state == "refused" else "left"
        return f"this box {verb} a round for {what} before its input left ({row.reason}); nothing of yours was sent"
    if row.state == "refused":
        return f"{what} was sent masked, then this box refused the hub's next request ({row.reason})"
    if sent:
        return f"{what} was sent masked; waiting for the coop's result"
    return f"taking part in a round for {what}"


def contributions(conn: sqlite3.Connection, zone: LocalZone, limit: int = 50) -> list[dict[str, Any]]:
    """The newest rounds first, each with its sentence and its cost."""
    out = []
    for row in rounds_sql.rounds(conn, limit):
        sent = row.input_sent_wall_ns is not None
        out.append(
            {
                "round_id": row.round_id,
                "state": row.state,
                "text": sentence(zone, row),
                "cost": f"ρ {row.rho} per event in each of those windows" if sent else "nothing spent",
            }
        )
    return out
