"""Release plans: which streams are released, their key sets, sensitivities and privacy cost.

Sensitivities are derived here, in code, from the stream's definition and the configured contribution
bounds; they are never typed into the configuration separately. The accountant composes costs per
privacy unit and window: streams over disjoint windows and disjoint keys compose in parallel; streams
that contain the same unit (a door event is in both the per-door and the per-store footfall) compose
sequentially, so their costs add up.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from fractions import Fraction

from agent.contract import (
    ALL_KEY,
    BASKET,
    DOOR_EVENT,
    FOOTFALL_DOOR,
    FOOTFALL_STORE,
    SALES_COUNT,
    SALES_REVENUE,
    StreamSpec,
)
from agent.privacy.bounds import BasketBounds

__all__ = ["BASKET", "DOOR_EVENT", "StreamPlan", "UnitBudget", "footfall_plans", "plan_problems", "sales_plans"]


@dataclasses.dataclass(frozen=True)
class StreamPlan:
    """One released stream, fully specified: its contract (agent/contract), its keys, and what it costs."""

    spec: StreamSpec  # name, topic segment, schema, key field, values, privacy unit
    keys: tuple[str, ...]  # the fixed, public key set; every key is released every window
    tier: str
    mechanism: str  # "discrete_laplace" or "discrete_gaussian"
    epsilon: Fraction | None  # pure DP cost per window (Laplace)
    rho: Fraction | None  # zCDP cost per window (Gaussian)
    l1_sensitivity: int
    l2_sensitivity_squared: int
    clamp_negative: bool = False
    suppress_below: int | None = None

    @property
    def name(self) -> str:
        """The configuration key and release-ledger stream name, e.g. "footfall_door"."""
        return self.spec.name

    @property
    def topic_stream(self) -> str:
        return self.spec.segment

    @property
    def schema(self) -> str:
        return self.spec.schema_id

    @property
    def unit(self) -> str:
        return self.spec.unit

    @property
    def key_field(self) -> str | None:
        return self.spec.key_field

    @property
    def fields(self) -> tuple[str, ...]:
        return self.spec.value_names

    @property
    def rho_cost(self) -> Fraction:
        """The stream's cost in zCDP terms: pure epsilon-DP implies epsilon^2/2-zCDP (Bun, Steinke 2016)."""
        if self.rho is not None:
            return self.rho
        assert self.epsilon is not None
        return self.epsilon * self.epsilon / 2

    def noise_parameters(self) -> tuple[int, int]:
        """Laplace scale t = L1/epsilon, or Gaussian sigma^2 = L2^2/(2 rho), as (numerator, denominator)."""
        if self.mechanism == "discrete_laplace":
            assert self.epsilon is not None
            scale = Fraction(self.l1_sensitivity) / self.epsilon
        else:
            assert self.rho is not None
            scale = Fraction(self.l2_sensitivity_squared) / (2 * self.rho)
        return scale.numerator, scale.denominator

    def post_process(self, value: int) -> int | None:
        """Applied to NOISY values only: clamp at zero, then suppress small values (free post-processing)."""
        if self.clamp_negative and value < 0:
            value = 0
        if self.suppress_below is not None and value < self.suppress_below:
            return None
        return value


@dataclasses.dataclass(frozen=True)
class UnitBudget:
    """What one privacy unit may cost per window."""

    epsilon: Fraction
    rho: Fraction | None = None


def plan_problems(plans: Sequence[StreamPlan], budget: UnitBudget) -> list[str]:
    """Why a plan is over budget (empty when it fits), one message per privacy unit.

    Streams of one unit compose sequentially. If every stream of a unit is pure epsilon-DP the sum of
    epsilons must fit the epsilon budget; once any stream is zCDP (Gaussian) the sum of rho costs,
    Laplace streams counted as epsilon^2/2, must fit the rho budget.
    """
    problems = []
    for unit in sorted({p.unit for p in plans}):
        streams = [p for p in plans if p.unit == unit]
        names = ", ".join(f"{p.name} ({p.epsilon if p.rho is None else f'rho {p.rho}'})" for p in streams)
        if all(p.rho is None for p in streams):
            total = sum((p.epsilon or Fraction(0) for p in streams), Fraction(0))
            if total > budget.epsilon:
                problems.append(
                    f"streams {names} spend epsilon {total} per {unit} per window, over the budget {budget.epsilon}"
                )
        else:
            total_rho = sum((p.rho_cost for p in streams), Fraction(0))
            if budget.rho is None:
                problems.append(f"streams {names} use zCDP but no rho budget is set")
            elif total_rho > budget.rho:
                problems.append(
                    f"streams {names} spend rho {total_rho} per {unit} per window, over the budget {budget.rho}"
                )
    return problems


def footfall_plans(doors: Sequence[str], settings: dict[str, dict[str, object]]) -> list[StreamPlan]:
    """The footfall streams. One door event adds one to exactly one cell (entries or exits) of one door,
    and to one cell of the store total, so L1 = L2^2 = 1 for both tables."""
    plans = []
    for spec, keys in ((FOOTFALL_DOOR, tuple(doors)), (FOOTFALL_STORE, (ALL_KEY,))):
        if spec.name not in settings:
            continue
        s = settings[spec.name]
        plans.append(
            StreamPlan(
                spec=spec,
                keys=keys,
                tier=str(s["tier"]),
                mechanism=str(s["mechanism"]),
                epsilon=_fraction(s.get("epsilon")),
                rho=_fraction(s.get("rho")),
                l1_sensitivity=1,
                l2_sensitivity_squared=1,
                clamp_negative=bool(s.get("clamp_negative", False)),
                suppress_below=_int_or_none(s.get("suppress_below")),
            )
        )
    return plans


def sales_plans(
    taxonomy: Sequence[str], bounds: BasketBounds, settings: dict[str, dict[str, object]]
) -> list[StreamPlan]:
    """The POS streams, one basket being the unit. Sensitivities come from the contribution bounds.

    sales_count: per category, the number of baskets that touched it, plus the key `all` holding the
    number of baskets. One basket adds 1 to at most `max_categories` categories and 1 to `all`, so
    L1 = L2^2 = max_categories + 1. Releasing `all` in the same table costs no extra epsilon and lets
    the hub derive the store's basket count and average basket value by post-processing.
    sales_revenue: per category, revenue in cents after clamping; L1 and L2^2 from BasketBounds.
    """
    plans = []
    for spec, keys, l1, l2sq in (
        (SALES_COUNT, (*taxonomy, ALL_KEY), bounds.count_l1 + 1, bounds.count_l2_squared + 1),
        (SALES_REVENUE, tuple(taxonomy), bounds.revenue_l1, bounds.revenue_l2_squared),
    ):
        if spec.name not in settings:
            continue
        s = settings[spec.name]
        plans.append(
            StreamPlan(
                spec=spec,
                keys=keys,
                tier=str(s["tier"]),
                mechanism=str(s["mechanism"]),
                epsilon=_fraction(s.get("epsilon")),
                rho=_fraction(s.get("rho")),
                l1_sensitivity=l1,
                l2_sensitivity_squared=l2sq,
                clamp_negative=bool(s.get("clamp_negative", False)),
                suppress_below=_int_or_none(s.get("suppress_below")),
            )
        )
    return plans


def _fraction(value: object) -> Fraction | None:
    if value is None or isinstance(value, Fraction):
        return value
    raise TypeError(f"expected a Fraction, got {value!r}")


def _int_or_none(value: object) -> int | None:
    if value is None or isinstance(value, int):
        return value
    raise TypeError(f"expected an int, got {value!r}")


#: Above this, `check-config` warns: a unit's odds can then move by more than e^2 (about 7x) in a window.
SANE_EPSILON_PER_WINDOW = Fraction(2)


def epsilon_per_unit(plans: Sequence[StreamPlan]) -> dict[str, Fraction]:
    """What one unit costs per window over every stream (pure epsilon-DP units only; zCDP units are
    accounted in rho)."""
    out: dict[str, Fraction] = {}
    for unit in sorted({p.unit for p in plans}):
        streams = [p for p in plans if p.unit == unit]
        if all(p.rho is None for p in streams):
            out[unit] = sum((p.epsilon or Fraction(0) for p in streams), Fraction(0))
    return out


def plan_warnings(plans: Sequence[StreamPlan]) -> list[str]:
    """Plans that fit their budget but spend more than a sane epsilon per window, in plain words."""
    return [
        f"each {unit} costs epsilon {float(total):g} per window over all streams, above {SANE_EPSILON_PER_WINDOW}: an"
        f" observer's odds about any one {unit} may move by a factor of up to e^{float(total):g} (about"
        f" {math.exp(total):,.0f}x); a person who causes k of them in a window costs k times that."
        " Lower the streams' epsilon unless the coop asked for this knowingly (docs/privacy.md)"
        for unit, total in epsilon_per_unit(plans).items()
        if total > SANE_EPSILON_PER_WINDOW
    ]
