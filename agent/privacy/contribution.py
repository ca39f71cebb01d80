"""Charging a secure-aggregation contribution: the accountant first, then the trap, ledger and spends, in the
caller's ONE transaction (the one that marks the contribution sent, before the masked input leaves).

What a contribution costs. The district sum the hub may unmask carries at least sigma^2 = Delta^2/(2 rho)
of distributed discrete Gaussian noise (agent/coop/secagg/noise.py), so for one privacy unit the round is
rho_bound-zCDP (Kairouz, Liu, Steinke 2021, Theorem 1), where Delta is the L2 sensitivity of this shop's
whole vector to one unit. A unit (one door event, one basket) lies in one window, so each window the round
covers is charged rho_bound once, for that unit, on top of what the shop released locally for the window
(sequential composition per window, docs/privacy.md). The charge is written as a zCDP spend so the
accountant converts every Laplace spend of the window (epsilon^2/2) and checks the rho budget.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
from fractions import Fraction

from agent.errors import PrivacyError
from agent.privacy import accountant, ledger
from agent.privacy.plan import StreamPlan, UnitBudget
from agent.privacy.sampler_version import SAMPLER_VERSION
from agent.store import releases
from agent.store import secagg as rounds_sql

MECHANISM = "distributed_discrete_gaussian"


def charged_rho(target: Fraction, tau: float, dims: int) -> Fraction:
    """The rho written to the accountant: KLS21's bound, exact in its main term, rounded up in the rest.

    With shares sized so that Delta^2 / (m s^2) = 2 * target, the bound 1/2 (a + b)^2 (a = sqrt(2 target),
    b = tau sqrt(d)) is target + a b + b^2 / 2; the excess is rounded up to a multiple of 1e-12, so the charge
    is never below the proved bound and equals the target when tau vanishes (large enough shares).
    """
    b = tau * math.sqrt(dims)
    if not math.isfinite(b) or b < 0:
        raise PrivacyError("the round's privacy bound is not finite; refusing to contribute")
    excess = math.sqrt(2 * float(target)) * b + b * b / 2
    return target + Fraction(math.ceil(excess * 1e12), 10**12)


def charge_contribution(
    conn: sqlite3.Connection,
    budget: UnitBudget,
    plan: StreamPlan,
    round_id: str,
    window_starts_ns: list[int],
    window_ns: int,
    rho: Fraction,
    parameters: dict[str, object],
    wall_ns: int,
) -> list[int]:
    """Charge `rho` to each window of the round for `plan`'s unit; PrivacyError (nothing written) if any
    window would go over the budget. Must run inside the transaction that marks the input sent. Returns the
    ledger ids written, for the release journal (the caller appends them before it commits)."""
    cost = dataclasses.replace(plan, mechanism="discrete_gaussian", epsilon=None, rho=rho)
    for start in window_starts_ns:
        problem = accountant.over_budget(conn, budget, start, cost)
        if problem is not None:
            raise PrivacyError(f"round {round_id}: contributing {plan.name} would spend {problem} per {plan.unit}")
    stream = rounds_sql.SPEND_PREFIX + plan.name
    rounds_sql.spend_windows(conn, plan.name, window_starts_ns, round_id)
    ledger_ids = []
    for start in window_starts_ns:
        row: dict[str, object] = {
            "window_start_ns": start,
            "window_end_ns": start + window_ns,
            "stream": stream,
            # What left: a masked vector (uniform mod 2**64 on its own); the hub learns only the sum.
            "noisy_values": json.dumps({"round_id": round_id, "sent": "masked input"}, sort_keys=True),
            "mechanism": MECHANISM,
            "parameters": json.dumps(parameters, sort_keys=True),
            "epsilon": f"rho={rho}",
            "sampler_version": SAMPLER_VERSION,
            "released_wall_ns": wall_ns,
        }
        row["prev_hash"] = ledger.last_hash(conn)
        row["hash"] = ledger.row_hash(str(row["prev_hash"]), row)
        ledger_id = releases.insert_ledger_row(conn, row)
        ledger_ids.append(ledger_id)
        releases.insert_spend(conn, start, stream, plan.unit, "", str(rho), ledger_id, kind=accountant.SECURE_ROUND)
    return ledger_ids
