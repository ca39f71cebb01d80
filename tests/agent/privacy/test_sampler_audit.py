"""The independent audit of the exact samplers, as a test: chi-square, Kolmogorov-Smirnov and moment
tests at ALPHA = 1e-4 on 1,000,000 samples per scale, with power controls at a 2 % wrong scale.

The draws come from the production kernels fed by the tests-only SHAKE-256 bit source with fixed seeds,
so this file is deterministic: it cannot fail by chance, and what it asserts was checked once and holds
for every run. (Fed by os.urandom instead, each goodness-of-fit test below would fail spuriously with
probability at most ALPHA; test_sampler_stats.py runs the production randomness at 1e-6.)

- Chi-square: Pearson over every bin with expected count >= 5, two tail bins (asymptotic chi-square).
- Kolmogorov-Smirnov: sup |F_n - F| against the Dvoretzky-Kiefer-Wolfowitz bound with Massart's
  constant, P(sup |F_n - F| > e) <= 2 exp(-2 n e^2), which holds exactly, for discrete laws too.
- Moments: z-tests of the sample mean (0 by symmetry) and the sample variance against the exact
  variance of the reference pmf, with the exact fourth moment in the variance's standard error (CLT).

Power: the same three tests on draws at 1.02x the scale (Laplace t, Gaussian sigma) must each reject:
the variance z is about 18 standard errors away at 1e6 samples (measured p below 1e-70), and the KS
statistic about twice its bound, so with fresh randomness the power test would miss with probability
far below 1e-6.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from agent.privacy.bits import DeterministicBitSource
from agent.privacy.sampler import discrete_gaussian, discrete_laplace
from tests.agent.privacy.test_sampler_stats import Reference, Samples, chi_square_pvalue

ALPHA = 1e-4
N = 1_000_000
WRONG_SCALE = Fraction(102, 100)

# name -> (kind, scale): the Laplace scale t, or the Gaussian sigma^2 as a fraction.
AUDITED: dict[str, tuple[str, Fraction]] = {
    "laplace-2": ("laplace", Fraction(2)),
    "laplace-7/3": ("laplace", Fraction(7, 3)),
    "gaussian-4": ("gaussian", Fraction(4)),
    "gaussian-25/3": ("gaussian", Fraction(25, 3)),
}


def audit_draws(name: str, factor: Fraction = Fraction(1)) -> tuple[Samples, Reference]:
    """N draws at `factor` times the scale (sigma, not sigma^2, for the Gaussian) and their exact pmf."""
    kind, param = AUDITED[name]
    param = param * factor if kind == "laplace" else param * factor * factor
    bits = DeterministicBitSource(f"audit/{name}/{factor}".encode())
    sampler = discrete_laplace if kind == "laplace" else discrete_gaussian
    return sampler(param.numerator, param.denominator, N, bits), Reference(kind, param)


def ks_statistic(x: Samples, ref: Reference) -> float:
    """sup_k |F_n(k) - F(k)| over the integers (the sup of a step-function difference is at a jump)."""
    ks = np.arange(-ref.half, ref.half + 1)
    counts = np.bincount(np.clip(x, -ref.half, ref.half) + ref.half, minlength=len(ks))
    empirical = np.cumsum(counts) / len(x)
    return float(np.abs(empirical - np.cumsum(ref.probs)).max())


def ks_passes(x: Samples, ref: Reference) -> bool:
    return ks_statistic(x, ref) <= math.sqrt(math.log(2 / ALPHA) / (2 * len(x)))


def moment_pvalues(x: Samples, ref: Reference) -> tuple[float, float]:
    """Two-sided p-values of the mean (true value 0) and of the variance (exact from the pmf)."""
    ks = np.arange(-ref.half, ref.half + 1, dtype=float)
    var = float((ref.probs * ks**2).sum())
    fourth = float((ref.probs * ks**4).sum())
    n = len(x)
    xf = x.astype(float)
    z_mean = float(xf.mean()) / math.sqrt(var / n)
    z_var = (float((xf**2).mean()) - var) / math.sqrt((fourth - var**2) / n)
    return float(2 * stats.norm.sf(abs(z_mean))), float(2 * stats.norm.sf(abs(z_var)))


@pytest.mark.parametrize("name", AUDITED)
def test_audit_sampler_passes_chi_square_ks_and_moments(name: str) -> None:
    x, ref = audit_draws(name)
    assert chi_square_pvalue(x, ref) > ALPHA
    assert ks_passes(x, ref), f"KS statistic {ks_statistic(x, ref):.5f}"
    p_mean, p_var = moment_pvalues(x, ref)
    assert p_mean > ALPHA
    assert p_var > ALPHA


@pytest.mark.parametrize("name", AUDITED)
def test_audit_rejects_a_two_percent_wrong_scale(name: str) -> None:
    x, _ = audit_draws(name, WRONG_SCALE)
    true_ref = Reference(*AUDITED[name])  # the reference is the configured scale; the draws are 2 % off
    _, p_var = moment_pvalues(x, true_ref)
    assert p_var < ALPHA
    assert chi_square_pvalue(x, true_ref) < ALPHA
    assert not ks_passes(x, true_ref)
