"""The accountant: what a (window, stream) release would cost each privacy unit, checked before any noise
is committed.

Costs compose per unit and window (privacy/plan.py): streams that contain the same unit add up
(sequential composition); disjoint windows compose in parallel. Pure epsilon-DP spends are summed as
epsilon; once any spend in the window is zCDP, every spend is converted (epsilon -> epsilon^2/2,
Bun and Steinke 2016, Proposition 1.4) and summed as rho against the rho budget.
"""

from __future__ import annotations

import sqlite3
from fractions import Fraction

from agent.privacy.plan import StreamPlan, UnitBudget
from agent.store import releases


def over_budget(conn: sqlite3.Connection, budget: UnitBudget, window_start_ns: int, plan: StreamPlan) -> str | None:
    """Why releasing `plan` in this window would exceed the unit's budget, or None when it fits."""
    rows = releases.spends_in(conn, window_start_ns, plan.unit)
    eps_spent = sum((Fraction(e) for e, _r in rows if e), Fraction(0))
    rho_spent = sum((Fraction(r) for _e, r in rows if r), Fraction(0))
    if plan.rho is None and all(not r for _e, r in rows):
        total: Fraction = eps_spent + (plan.epsilon or Fraction(0))
        if total > budget.epsilon:
            return f"epsilon {total}, over the budget {budget.epsilon}"
        return None
    total = rho_spent + plan.rho_cost + sum((Fraction(e) ** 2 / 2 for e, r in rows if e and not r), Fraction(0))
    if budget.rho is None or total > budget.rho:
        return f"rho {total}, over the budget {budget.rho}"
    return None
