"""The rho a secure-aggregation contribution charges: never below KLS21's bound, the target itself when the
bound's correction vanishes."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from agent.coop.secagg.noise import distributed_rho
from agent.errors import PrivacyError
from agent.privacy.contribution import charged_rho


@pytest.mark.parametrize(
    ("share_sigma2", "fewest", "most", "dims"), [(4.0, 6, 10, 3), (1.0, 6, 10, 24), (0.3, 14, 20, 504)]
)
def test_the_charge_is_never_below_the_proved_bound(share_sigma2: float, fewest: int, most: int, dims: int) -> None:
    target = Fraction(1) / (2 * Fraction(share_sigma2).limit_denominator(1000) * fewest)  # Delta = 1
    bound, tau = distributed_rho(1, float(1 / (2 * target * fewest)), fewest, most, dims)
    charge = charged_rho(target, tau, dims)
    assert charge >= target and float(charge) >= bound


def test_without_a_correction_the_charge_is_the_target() -> None:
    assert charged_rho(Fraction(1, 8), 0.0, 504) == Fraction(1, 8)


def test_a_non_finite_bound_is_refused() -> None:
    with pytest.raises(PrivacyError):
        charged_rho(Fraction(1, 8), math.inf, 3)
