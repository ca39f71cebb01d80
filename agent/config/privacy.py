"""The [privacy] section: the per-window budget, the lifetime budget of the privacy filter, and each stream's
mechanism and epsilon (or rho), checked together (agent/privacy/plan.py) so a configuration that would exceed
the budget is refused before the agent starts."""

from __future__ import annotations

import functools
from fractions import Fraction

from agent.config.pos import PosSettings
from agent.config.reader import TableReader, collect
from agent.contract import STREAMS, TIERS
from agent.privacy.plan import StreamPlan, UnitBudget, footfall_plans, plan_problems, sales_plans

MECHANISMS = ("discrete_laplace", "discrete_gaussian")


def read_privacy(
    privacy: TableReader, doors: tuple[str, ...], pos: PosSettings | None
) -> tuple[UnitBudget, tuple[StreamPlan, ...], UnitBudget]:
    problems = privacy.problems
    budget = UnitBudget(
        epsilon=collect(problems, lambda: privacy.epsilon("budget_epsilon_per_window", "1"), Fraction(1)),
        rho=collect(problems, lambda: privacy.epsilon("budget_rho_per_window"), None)
        if "budget_rho_per_window" in privacy.table
        else None,
    )
    privacy.used.add("budget_rho_per_window")
    lifetime = UnitBudget(
        epsilon=collect(
            problems, lambda: privacy.epsilon("lifetime_epsilon_per_window", str(budget.epsilon)), budget.epsilon
        ),
        rho=collect(problems, lambda: privacy.epsilon("lifetime_rho_per_window"), budget.rho)
        if "lifetime_rho_per_window" in privacy.table
        else budget.rho,
    )
    privacy.used.add("lifetime_rho_per_window")
    if lifetime.epsilon < budget.epsilon or (budget.rho is not None and (lifetime.rho or 0) < budget.rho):
        privacy.note(
            privacy.fail(
                "lifetime_epsilon_per_window",
                f"{lifetime.epsilon} is below budget_epsilon_per_window ({budget.epsilon}) (or its rho below the"
                " rho budget): the hourly summaries alone could not be released",
                "set the lifetime budget at least as large as the hourly budget",
            )
        )
    stream_settings = {}
    for spec in STREAMS:
        section = privacy.table_at(spec.name)
        if not section.get("enabled", bool, not spec.needs_pos or pos is not None):
            section.reject_unknown()
            continue
        if spec.needs_pos and pos is None:
            section.note(
                section.fail("enabled", "needs the public category taxonomy", "add a [pos] section with taxonomy")
            )
            continue
        read = functools.partial(stream_settings_of, section, spec.default_epsilon, spec.tier)
        settings: dict[str, object] | None = collect(problems, read, None)
        if settings is not None:
            stream_settings[spec.name] = settings
    streams = tuple(footfall_plans(list(doors), stream_settings))
    if pos is not None:
        streams += tuple(sales_plans(pos.taxonomy, pos.bounds, stream_settings))
    if not streams:
        raise privacy.fail("footfall_door", "every stream is disabled", "enable at least one stream")
    privacy.reject_unknown()
    plan = plan_problems(streams, budget)
    if plan:
        key = "budget_rho_per_window" if "rho" in plan[0] else "budget_epsilon_per_window"
        privacy.note(privacy.fail(key, "; ".join(plan), "lower the streams' epsilon (or rho) or raise the budget"))
    return budget, streams, lifetime


def stream_settings_of(section: TableReader, default_epsilon: str, default_tier: str) -> dict[str, object]:
    settings: dict[str, object] = {
        "tier": section.choice("tier", default_tier, TIERS),
        "mechanism": section.choice("mechanism", "discrete_laplace", MECHANISMS),
        "clamp_negative": section.get("clamp_negative", bool, False),
    }
    if "suppress_below" in section.table:
        settings["suppress_below"] = section.int_in("suppress_below", None, 1, 1_000_000)
    if settings["mechanism"] == "discrete_laplace":
        settings["epsilon"] = section.epsilon("epsilon", default_epsilon)
        if "rho" in section.table:
            raise section.fail("rho", "applies to discrete_gaussian only", "remove rho or set that mechanism")
    else:
        settings["rho"] = section.epsilon("rho")
        if "epsilon" in section.table:
            raise section.fail("epsilon", "does not apply to discrete_gaussian", "use rho instead")
    section.reject_unknown()
    return settings
