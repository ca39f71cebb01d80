"""What left the shop, in words: every published summary with its delivery state and epsilon, the
per-window total, the retained status messages, and what the privacy budget means for a person.

Read from the outbox (delivered rows are kept a week; the release ledger keeps the values for ever)
and from the record of status messages; the text is built from the stored payload itself, so the page
shows exactly what went over the wire.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from fractions import Fraction
from typing import Any

from agent.config import AgentConfig
from agent.contract.streams import BASKET, DOOR_EVENT
from agent.owner.localtime import LocalZone, money
from agent.pipeline import status_log

NOISE_NOTE = "with privacy noise; true values stay here"
UNIT_WORDS: dict[str, str] = {}  # the contract's unit names already read as words ("door event")


def _iso_ns(text: str) -> int:
    import datetime as dt

    return int(dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()) * 1_000_000_000


def _fraction(text: str) -> Fraction:
    return Fraction(text) if text else Fraction(0)


def _number(f: Fraction) -> str:
    return str(f.numerator) if f.denominator == 1 else f"{float(f):g}"


def licensing_cost(payload: dict[str, Any]) -> str:
    if payload.get("status") == "accepted":  # a district query: the secure round spends, when it runs
        rho = (payload.get("privacy") or {}).get("round_rho")
        return f"nothing yet; joining the district round spends ρ {rho} in each window of the range"
    if payload.get("status") != "answered":
        return "nothing spent: refused"
    eps = (payload.get("privacy") or {}).get("epsilon_exact")
    return f"ε {eps} in each window of the range; credit {int(payload.get('credit_cents', 0)) / 100:.2f}"


def describe_values(stream: str, payload: dict[str, Any], currency: str = "") -> str:
    """`front door: 23 in, 19 out`, `bakery: 12 baskets`, `whole shop: ...` from one payload."""
    if stream.startswith("query:"):
        what = f"data request {payload.get('query_id', '')} ({str(payload.get('kind', '')).replace('_', ' ')})"
        if payload.get("status") == "answered":
            return f"{what}: answered, {len(payload.get('values') or {})} figures"
        if payload.get("status") == "accepted":
            return f"{what}: accepted for the coop's secure round (only the district sum is revealed)"
        return f"{what}: refused ({payload.get('reason', '')})"
    values = payload.get("values", {})
    if stream.startswith("footfall"):
        where = f"{payload['door']} door" if "door" in payload else "whole shop"
        parts = [f"{_value(values.get('entries'))} in", f"{_value(values.get('exits'))} out"]
    elif stream == "sales_count":
        where = "all categories" if payload.get("category") == "all" else str(payload.get("category"))
        parts = [f"{_value(values.get('baskets'))} baskets"]
    elif stream == "sales_revenue":
        where = str(payload.get("category"))
        cents = values.get("revenue_cents")
        parts = [("withheld" if cents is None else money(int(cents), currency)) + " in sales"]
    else:
        key = next((str(payload[k]) for k in ("door", "category", "key") if k in payload), stream)
        where, parts = key, [f"{k} {_value(v)}" for k, v in values.items()]
    return f"{where}: {', '.join(parts)}"


def _value(v: Any) -> str:
    return "withheld (small)" if v is None else str(v)


def window_totals(conn: sqlite3.Connection) -> dict[tuple[int, str], Fraction]:
    """(window start, unit) -> epsilon spent on that unit in that window, over every stream."""
    out: dict[tuple[int, str], Fraction] = defaultdict(Fraction)
    for start, unit, eps in conn.execute("SELECT window_start_ns, unit, epsilon FROM privacy_spend"):
        out[(int(start), str(unit))] += _fraction(str(eps or ""))
    return out


def summaries(conn: sqlite3.Connection, zone: LocalZone, currency: str = "", limit: int = 5000) -> list[dict[str, Any]]:
    """Every summary in the outbox, newest first, in words, with its delivery state and epsilon."""
    totals = window_totals(conn)
    rows = conn.execute(
        "SELECT o.seq, o.msg_id, o.topic, o.payload, o.delivered_wall_ns, o.rejections, o.reject_reason, l.stream,"
        " o.window_start_ns FROM outbox o JOIN release_ledger l ON l.id = o.ledger_id ORDER BY o.seq DESC LIMIT ?",
        (limit,),
    ).fetchall()
    out = []
    for seq, msg_id, topic, text, delivered, rejections, reason, stream, start in rows:
        payload = json.loads(text) if text else {}
        privacy = payload.get("privacy") or {}  # a licensing refusal has none
        end_ns = _iso_ns(payload["window"]["end"]) if "window" in payload else int(start)
        unit = str(privacy.get("unit", ""))
        if delivered is not None:
            state, state_text = "delivered", f"delivered {zone.clock(int(delivered))}"
        elif rejections:
            state, state_text = "refused", f"refused by the broker ({reason}); held here and retried"
        else:
            state, state_text = "pending", "waiting to be sent (kept here until the broker confirms it)"
        cost = (
            f"ε {privacy['epsilon_exact'] or privacy['epsilon']}" if privacy.get("epsilon") is not None
            else f"ρ {privacy.get('rho_exact') or privacy.get('rho')}"
        )  # fmt: skip
        if str(stream).startswith("query:"):  # a licensing answer or refusal (docs/licensing.md)
            cost = licensing_cost(payload)
        total = totals.get((int(start), unit), Fraction(0))
        out.append(
            {
                "seq": int(seq),
                "msg_id": str(msg_id),
                "topic": str(topic),
                "stream": str(stream),
                "window": zone.span(int(start), end_ns),
                "text": f"{describe_values(str(stream), payload, currency)}, {NOISE_NOTE}",
                "values": payload.get("values", {}),
                "state": state,
                "state_text": state_text,
                "cost": cost,
                "window_total": f"ε {_number(total)} per {UNIT_WORDS.get(unit, unit)} in this window" if unit else "",
                "late": bool(payload.get("late")),
            }
        )
    return out


def status_messages(conn: sqlite3.Connection, zone: LocalZone) -> list[dict[str, Any]]:
    """The retained status messages that left, newest first, in words."""
    out = []
    for item in reversed(status_log.sent(conn)):
        payload = json.loads(item["payload"])
        when = zone.clock(int(item["wall_ns"])) if item["wall_ns"] else "when the connection dropped"
        who = "the broker, for this box (its last will)" if item["how"] == "broker" else "this box"
        out.append(
            {
                "topic": item["topic"],
                "payload": item["payload"],
                "text": f"{when}: \u201c{payload.get('state')}\u201d (connection {payload.get('connection')}),"
                f" sent by {who}; it names only the coop, the shop and the agent version",
            }
        )
    return out


def budget(config: AgentConfig) -> dict[str, Any]:
    """The per-window budget, what each unit costs per window, and what that means for a person."""
    per_unit: dict[str, Fraction] = defaultdict(Fraction)
    for plan in config.streams:
        if plan.epsilon is not None:
            per_unit[plan.unit] += plan.epsilon
    door = per_unit.get(DOOR_EVENT, Fraction(0))
    basket = per_unit.get(BASKET, Fraction(0))
    people = [
        ("a customer who comes in, buys once and leaves", 2 * door + basket, "per visit day"),
        ("a daily visitor who buys every day, over a year", 365 * (2 * door + basket), "per year"),
        ("a staff member: 4 passages a day, 250 days", 250 * 4 * door, "per year"),
    ]
    return {
        "budget": _number(config.budget.epsilon),
        "lifetime": _number(config.filter_budget.epsilon),
        "units": {UNIT_WORDS.get(u, u): _number(e) for u, e in per_unit.items()},
        "people": [(who, _number(eps), when) for who, eps, when in people if eps],
    }
