"""The accountant, generalised into a privacy filter: what a release would cost each privacy unit in each
window it touches, checked against the window's lifetime budget before any noise is drawn.

Every release that touches a window spends from that window's budget: the hourly summaries
(pipeline/release.py), secure-aggregation contributions and licensed query answers (agent/licensing).
A privacy unit (one door event, one basket) lies in exactly one window, so each unit's total cost is the
sum of the spends recorded in its window (sequential composition); different windows hold different
units and compose in parallel. Because the budget is fixed in advance and each release is refused unless
the running total plus its own cost stays within it, the epsilons may be chosen adaptively (by queries
that depend on earlier answers) and the total still holds: this is a privacy filter (Rogers, Roth,
Ullman, Vadhan 2016, "Privacy odometers and filters", the filter for basic composition; for zCDP the
rho sum stopped at a fixed bound is a valid filter too, Feldman and Zrnic 2021; see docs/privacy.md).

Pure epsilon-DP spends are summed as epsilon; once any spend in the window is zCDP, every spend is
converted (epsilon -> epsilon^2/2, Bun and Steinke 2016, Proposition 1.4) and summed as rho against the
rho budget. Spends are rows of `privacy_spend`, written in the same SQLite transaction as the release
they pay for (and journaled with it), so no release exists without its spend.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterable
from fractions import Fraction
from typing import Protocol

from agent.privacy.plan import UnitBudget
from agent.store import releases

# What a spend is for (privacy_spend.kind).
SUMMARY, SECURE_ROUND, QUERY = "summary", "secure_round", "query"


class Cost(Protocol):
    """Anything that costs a unit epsilon (pure DP) or rho (zCDP) per window: a StreamPlan or a Charge."""

    @property
    def unit(self) -> str: ...
    @property
    def epsilon(self) -> Fraction | None: ...
    @property
    def rho(self) -> Fraction | None: ...


@dataclasses.dataclass(frozen=True)
class Charge:
    """One release's cost per window it touches, for releases that are not hourly streams."""

    unit: str
    epsilon: Fraction | None = None
    rho: Fraction | None = None


def over_budget(conn: sqlite3.Connection, budget: UnitBudget, window_start_ns: int, plan: Cost) -> str | None:
    """Why releasing `plan` in this window would exceed the unit's budget, or None when it fits.

    `budget` is the window's lifetime budget (AgentConfig.filter_budget); every spend already recorded in
    the window counts, whatever kind of release made it.
    """
    rows = releases.spends_in(conn, window_start_ns, plan.unit)
    return _problem(rows, budget, plan)


def together(plans: Iterable[Cost]) -> list[Charge]:
    """Several releases of one window as one charge per unit (sequential composition: costs add up)."""
    by_unit: dict[str, list[Cost]] = {}
    for plan in plans:
        by_unit.setdefault(plan.unit, []).append(plan)
    charges = []
    for unit, group in sorted(by_unit.items()):
        if all(p.rho is None for p in group):
            charges.append(Charge(unit, epsilon=sum((p.epsilon or Fraction(0) for p in group), Fraction(0))))
        else:
            rho = sum((p.rho if p.rho is not None else (p.epsilon or Fraction(0)) ** 2 / 2 for p in group), Fraction(0))
            charges.append(Charge(unit, rho=rho))
    return charges


def first_over_budget(
    conn: sqlite3.Connection, budget: UnitBudget, windows: Iterable[int], charge: Cost
) -> tuple[int, str] | None:
    """The first window (and why) where `charge` would exceed the budget, or None when it fits in all."""
    for start in windows:
        problem = over_budget(conn, budget, start, charge)
        if problem is not None:
            return start, problem
    return None


def _problem(rows: list[tuple[str, str]], budget: UnitBudget, plan: Cost) -> str | None:
    eps_spent = sum((Fraction(e) for e, _r in rows if e), Fraction(0))
    rho_spent = sum((Fraction(r) for _e, r in rows if r), Fraction(0))
    if plan.rho is None and all(not r for _e, r in rows):
        total: Fraction = eps_spent + (plan.epsilon or Fraction(0))
        if total > budget.epsilon:
            return f"epsilon {total}, over the budget {budget.epsilon}"
        return None
    own = plan.rho if plan.rho is not None else (plan.epsilon or Fraction(0)) ** 2 / 2
    total = rho_spent + own + sum((Fraction(e) ** 2 / 2 for e, r in rows if e and not r), Fraction(0))
    if budget.rho is None or total > budget.rho:
        return f"rho {total}, over the budget {budget.rho}"
    return None


def spent(conn: sqlite3.Connection, window_start_ns: int, unit: str) -> Fraction:
    """Epsilon spent so far on one unit in one window (pure spends only; for the owner's page and CLI)."""
    return sum((Fraction(e) for e, _r in releases.spends_in(conn, window_start_ns, unit) if e), Fraction(0))
