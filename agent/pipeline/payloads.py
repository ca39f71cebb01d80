"""The outbox's payloads: one JSON summary per key of a released (window, stream), with its message id.

Built inside the release transaction from the noisy values just recorded in the ledger, so a payload
says exactly what the ledger holds. Topic, message id, stream name and time formats come from the
stream contract (agent/contract), which the hub reads too. Every payload carries its privacy block:
the stream's own cost and, so a reader need not add streams up, what one privacy unit costs in this
window over every stream released for it (`epsilon_window_total`, or `rho_window_total` for zCDP).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from agent.clock import NS_PER_S
from agent.config import AgentConfig
from agent.contract import iso_utc, msg_id, summary_topic
from agent.privacy.plan import StreamPlan
from agent.privacy.sampler_version import SAMPLER_VERSION
from agent.store import outbox


def fraction_or_none(value: Fraction | None) -> tuple[float | None, str | None]:
    return (None, None) if value is None else (float(value), str(value))


def window_totals(plans: Sequence[StreamPlan], unit: str) -> tuple[Fraction | None, Fraction | None]:
    """(epsilon, rho) one unit costs per window over every stream that contains it (sequential composition).

    Pure units add epsilons; a unit with any zCDP stream is accounted in rho, a Laplace stream counting
    epsilon^2/2 (Bun and Steinke 2016): the same rule as the accountant (privacy/accountant.py).
    """
    streams = [p for p in plans if p.unit == unit]
    if all(p.rho is None for p in streams):
        return sum((p.epsilon or Fraction(0) for p in streams), Fraction(0)), None
    return None, sum((p.rho_cost for p in streams), Fraction(0))


def queue_message(
    conn: sqlite3.Connection,
    config: AgentConfig,
    ledger_id: int,
    start_ns: int,
    end_ns: int,
    plan: StreamPlan,
    key: str,
    values: dict[str, int | None],
    now_ns: int,
    grace_ns: int,
) -> int:
    """Enqueue one summary (its outbox row, then its payload, which names the row's seq); returns the seq."""
    # The window's own length names its stream and topic (agent/contract): after a change of length the
    # windows still on the old grid go out under the old length's name, matching their window.seconds.
    window_s = (end_ns - start_ns) // NS_PER_S
    message_id = msg_id(config.coop, config.store, plan.spec, window_s, start_ns, key)
    topic = summary_topic(config.coop, config.store, plan.tier, plan.spec, window_s)
    seq = outbox.enqueue(conn, message_id, topic, start_ns, ledger_id, now_ns)
    num, den = plan.noise_parameters()
    epsilon, epsilon_exact = fraction_or_none(plan.epsilon)
    rho, rho_exact = fraction_or_none(plan.rho)
    total_epsilon, total_rho = window_totals(config.streams, plan.unit)
    payload: dict[str, Any] = {
        "schema": plan.schema,
        "msg_id": message_id,
        "seq": seq,
        "coop": config.coop,
        "store": config.store,
        "stream": plan.spec.stream(window_s),
        "tier": plan.tier,
        "window": {"start": iso_utc(start_ns), "end": iso_utc(end_ns), "seconds": window_s},
        "values": values,
        "late": outbox.is_late(end_ns, now_ns, grace_ns),
        # door, store or category: so a reader summing over coop/v1/# can keep one scope (docs/topics.md)
        "scope": plan.spec.scope(key),
        "privacy": {
            "mechanism": plan.mechanism,
            "epsilon": epsilon,
            "epsilon_exact": epsilon_exact,
            "rho": rho,
            "rho_exact": rho_exact,
            "epsilon_window_total": fraction_or_none(total_epsilon)[0],
            "rho_window_total": fraction_or_none(total_rho)[0],
            "sensitivity": plan.l1_sensitivity,
            "sensitivity_l2_squared": plan.l2_sensitivity_squared,
            "scale": f"{num}/{den}" if plan.mechanism == "discrete_laplace" else None,
            "sigma2": f"{num}/{den}" if plan.mechanism == "discrete_gaussian" else None,
            "unit": plan.unit,
            "sampler": SAMPLER_VERSION,
            "post_processing": {"clamp_negative": plan.clamp_negative, "suppress_below": plan.suppress_below},
        },
    }
    if plan.key_field is not None:
        payload[plan.key_field] = key
    outbox.set_payload(conn, seq, payload)
    return seq
