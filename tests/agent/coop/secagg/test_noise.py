"""The distributed noise: share sizing, the KLS21 bound, and the summed noise against its exact distribution."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from agent.coop.secagg.errors import SecAggError
from agent.coop.secagg.loopback import enrol, propose
from agent.coop.secagg.noise import distributed_rho, draw_noise_share, plan_noise
from agent.privacy.sampler import DeterministicBitSource

#: The goodness-of-fit test below would reject a correct sampler with probability below this (its seed is
#: fixed, so in practice it is deterministic; ALPHA is what it would be with fresh bits).
ALPHA = 1e-6
_, ROSTER = enrol(20)


def config_for(
    threshold: int, sensitivity: int = 1, rho: Fraction = Fraction(1, 8), length: int = 24, colluders: int = 0
):
    return propose(ROSTER, "r-noise", threshold, length, 10**6, sensitivity, rho, colluders=colluders)


def test_each_share_is_the_central_variance_over_the_honest_minimum() -> None:
    plan = plan_noise(config_for(14, sensitivity=20_000, rho=Fraction(1, 8)))
    assert plan.central_sigma2 == Fraction(20_000**2) / Fraction(1, 4)
    assert plan.share_sigma2 == plan.central_sigma2 / 14
    with_colluders = plan_noise(config_for(14, sensitivity=20_000, colluders=3))
    assert with_colluders.share_sigma2 == plan.central_sigma2 / 11


def test_the_sum_bound_is_the_central_rho_when_shares_are_not_tiny() -> None:
    plan = plan_noise(config_for(14, sensitivity=1, rho=Fraction(1, 8)))  # share sigma^2 = 2/14 ... too small
    assert plan.tau > 1e-3 and plan.rho_bound > 0.125  # the bound honestly reports the gap
    big = plan_noise(config_for(14, sensitivity=20_000, rho=Fraction(1, 8)))
    assert big.tau < 1e-100 and math.isclose(big.rho_bound, 0.125, rel_tol=1e-12)
    # Epsilon at delta = 1e-6 from rho = 1/8 (Bun-Steinke): 1/8 + 2 sqrt(ln(1e6)/8).
    assert math.isclose(big.epsilon(1e-6), 0.125 + 2 * math.sqrt(0.125 * math.log(1e6)))


def test_bound_refuses_shares_below_sigma_one_half() -> None:
    with pytest.raises(SecAggError):
        distributed_rho(1, 0.2, 10, 20, 1)


def discrete_gaussian_pmf(sigma2: float, reach: int) -> np.ndarray:
    support = np.arange(-reach, reach + 1)
    weights = np.exp(-(support.astype(float) ** 2) / (2 * sigma2))
    return weights / weights.sum()


def summed_noise(threshold: int, shares: int, length: int) -> np.ndarray:
    """The sum of `shares` protocol noise shares, each sized for `threshold`, over `length` coordinates."""
    config = config_for(threshold, sensitivity=10, rho=Fraction(1, 2), length=length)  # central sigma^2 = 100
    plan = plan_noise(config)
    return sum(draw_noise_share(config, plan, DeterministicBitSource(b"sum-%d" % i)) for i in range(shares))  # type: ignore[return-value]


def chi_square_against_convolution(sums: np.ndarray, share_sigma2: float, shares: int) -> float:
    """p-value of the observed sums against the exact pmf of a sum of iid discrete Gaussians (bins with >= 5)."""
    pmf = discrete_gaussian_pmf(share_sigma2, 40)
    total = pmf
    for _ in range(shares - 1):
        total = np.convolve(total, pmf)
    reach = (len(total) - 1) // 2
    expected = total * len(sums)
    keep = expected >= 5
    observed = np.bincount(np.clip(sums + reach, 0, 2 * reach), minlength=2 * reach + 1)
    obs = np.append(observed[keep], observed[~keep].sum())
    exp = np.append(expected[keep], expected[~keep].sum())
    return float(stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue)


def test_summed_noise_of_14_shares_matches_its_exact_distribution_and_variance() -> None:
    sums = summed_noise(threshold=14, shares=14, length=100_000)
    # Variance of each share is 100/14 (up to exp(-2 pi^2 sigma^2) ~ 1e-61); the sum's is 100.
    assert abs(sums.var() - 100.0) < 100.0 * 5 * math.sqrt(2 / len(sums))  # 5 standard errors
    assert chi_square_against_convolution(sums, 100 / 14, 14) > ALPHA


def test_the_same_test_rejects_shares_sized_for_the_wrong_threshold() -> None:
    sums = summed_noise(threshold=20, shares=14, length=100_000)  # variance 70, not 100
    assert chi_square_against_convolution(sums, 100 / 14, 14) < ALPHA
