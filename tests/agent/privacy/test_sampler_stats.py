"""Statistical tests of the exact samplers against their exact pmfs, with power checks.

Every goodness-of-fit test below runs at ALPHA = 1e-6 on N_TRUE = 1,000,000 samples drawn from the
real OS CSPRNG, so each fails spuriously with probability at most 1e-6 (20 such tests plus 2
maximum-vs-tail-bound checks: at most 2.2e-5 for the whole file). Each scale-sensitive test is also
run, unchanged, on N_POWER = 200,000 samples from the sampler at the wrong scale (0.7x and 1.3x the
Laplace scale t, or 0.7x and 1.3x sigma^2 for the Gaussian, which is closer to the truth than
scaling sigma) and must reject it. Symmetry is invariant under a scale change, so its power check
uses a sign-biased sampler instead (3% of negative draws flipped to positive).

Floats appear only here, in the reference pmfs; the samplers themselves are integer-only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from functools import cache

import numpy as np
import numpy.typing as npt
import pytest
from scipy import stats

from agent.privacy.sampler import discrete_gaussian, discrete_laplace, laplace_tail_bound

ALPHA = 1e-6
N_TRUE = 1_000_000
N_POWER = 200_000
MIN_EXPECTED_CHI2 = 5.0
MIN_EXPECTED_LOG_RATIO = 100.0
TAIL_TARGET = 0.02
SIGN_FLIP = 0.03

Samples = npt.NDArray[np.int64]

# name -> (kind, parameter): the Laplace scale t, or sigma^2.
DISTRIBUTIONS: dict[str, tuple[str, Fraction]] = {
    "laplace-2": ("laplace", Fraction(2)),
    "laplace-7/3": ("laplace", Fraction(7, 3)),
    "gaussian-4": ("gaussian", Fraction(4)),
    "gaussian-25/3": ("gaussian", Fraction(25, 3)),
    "gaussian-2/5": ("gaussian", Fraction(2, 5)),  # sigma < 1 takes the other kernel branch
}
WRONG_FACTORS = [Fraction(7, 10), Fraction(13, 10)]


class Reference:
    """The exact pmf of a distribution on [-L, L], with L far enough out that the rest is < 1e-30."""

    def __init__(self, kind: str, param: Fraction) -> None:
        value = float(param)
        if kind == "laplace":
            half = math.ceil(75 * value) + 10
            ks = np.arange(-half, half + 1)
            log_w = -np.abs(ks) / value
        else:
            half = math.ceil(12 * math.sqrt(value)) + 10
            ks = np.arange(-half, half + 1)
            log_w = -(ks.astype(float) ** 2) / (2 * value)
        weights = np.exp(log_w - log_w.max())
        self.half = half
        self.probs = weights / weights.sum()

    def p(self, k: int) -> float:
        """P(X = k)."""
        return float(self.probs[k + self.half]) if abs(k) <= self.half else 0.0

    def upper_tail(self, k: int) -> float:
        """P(X > k) for k >= 0."""
        return float(self.probs[k + self.half + 1 :].sum())


def draw(kind: str, param: Fraction, n: int) -> Samples:
    """Samples from the production sampler with the real OS randomness source."""
    if kind == "laplace":
        return discrete_laplace(param.numerator, param.denominator, n)
    return discrete_gaussian(param.numerator, param.denominator, n)


@cache
def samples_for(name: str, factor: Fraction = Fraction(1)) -> Samples:
    kind, param = DISTRIBUTIONS[name]
    return draw(kind, param * factor, N_TRUE if factor == 1 else N_POWER)


def chi_square_pvalue(x: Samples, ref: Reference) -> float:
    """Pearson chi-square over bins -K..K plus two tail bins, every expected count >= 5."""
    n = len(x)
    k_max = 0
    while n * ref.p(k_max + 1) >= MIN_EXPECTED_CHI2 and n * ref.upper_tail(k_max + 1) >= MIN_EXPECTED_CHI2:
        k_max += 1
    clipped = np.clip(x, -k_max - 1, k_max + 1) + k_max + 1
    observed = np.bincount(clipped, minlength=2 * k_max + 3).astype(float)
    expected = n * np.array(
        [ref.upper_tail(k_max)] + [ref.p(k) for k in range(-k_max, k_max + 1)] + [ref.upper_tail(k_max)]
    )
    statistic = float(((observed - expected) ** 2 / expected).sum())
    return float(stats.chi2.sf(statistic, df=len(expected) - 1))


def symmetry_pvalue(x: Samples, ref: Reference) -> float:
    """Chi-square of P(+k) vs P(-k): each k with expected count >= 5 per side, plus a folded tail bin."""
    n = len(x)
    k_max = 1
    while n * ref.p(k_max + 1) >= MIN_EXPECTED_CHI2 and n * ref.upper_tail(k_max + 1) >= MIN_EXPECTED_CHI2:
        k_max += 1
    folded = np.minimum(np.abs(x), k_max + 1)
    positive = np.bincount(folded[x > 0], minlength=k_max + 2)[1:].astype(float)
    negative = np.bincount(folded[x < 0], minlength=k_max + 2)[1:].astype(float)
    total = positive + negative
    used = total > 0
    statistic = float(((positive - negative)[used] ** 2 / total[used]).sum())
    return float(stats.chi2.sf(statistic, df=int(used.sum())))


def log_ratio_pvalue(x: Samples, ref: Reference) -> float:
    """Weighted log-ratio test: ln(C[k+1]/C[k]) against ln(p(k+1)/p(k)) (= -1/t for Laplace), |x| >= 1.

    Weights are inverse variances under H0; the statistic's variance includes the -1/E[k+1]
    covariance of neighbouring ratios, so z is standard normal under H0 (bins with E >= 100).
    """
    n = len(x)
    counts = np.bincount(np.abs(x)).astype(float)
    ks = [k for k in range(1, ref.half) if 2 * n * ref.p(k + 1) >= MIN_EXPECTED_LOG_RATIO]
    if not ks:
        raise AssertionError("sample too small for a log-ratio test")
    if len(counts) <= ks[-1] + 1 or np.any(counts[1 : ks[-1] + 2] == 0):
        return 0.0
    expected = {k: 2 * n * ref.p(k) for k in range(1, ks[-1] + 2)}
    weights = np.array([1.0 / (1.0 / expected[k] + 1.0 / expected[k + 1]) for k in ks])
    deviations = np.array([math.log(counts[k + 1] / counts[k]) - math.log(ref.p(k + 1) / ref.p(k)) for k in ks])
    variance = float((weights**2 * np.array([1 / expected[k] + 1 / expected[k + 1] for k in ks])).sum())
    variance -= 2 * sum(weights[i] * weights[i + 1] / expected[ks[i] + 1] for i in range(len(ks) - 1))
    z = float((weights * deviations).sum()) / math.sqrt(variance)
    return float(2 * stats.norm.sf(abs(z)))


def tail_mass_pvalue(x: Samples, ref: Reference) -> float:
    """Exact binomial test of #{|X| >= k0}, k0 the first k whose two-sided tail mass is <= 2%."""
    k0 = 1
    while 2 * ref.upper_tail(k0 - 1) > TAIL_TARGET:
        k0 += 1
    observed = int((np.abs(x) >= k0).sum())
    return float(stats.binomtest(observed, len(x), 2 * ref.upper_tail(k0 - 1)).pvalue)


TESTS: dict[str, Callable[[Samples, Reference], float]] = {
    "chi_square": chi_square_pvalue,
    "symmetry": symmetry_pvalue,
    "log_ratio": log_ratio_pvalue,
    "tail_mass": tail_mass_pvalue,
}
SCALE_SENSITIVE = ["chi_square", "log_ratio", "tail_mass"]


@pytest.mark.parametrize("name", DISTRIBUTIONS)
@pytest.mark.parametrize("test", TESTS)
def test_sampler_matches_exact_pmf(name: str, test: str) -> None:
    """N_TRUE = 1,000,000 samples at the true parameter pass each test at ALPHA = 1e-6."""
    kind, param = DISTRIBUTIONS[name]
    p = TESTS[test](samples_for(name), Reference(kind, param))
    assert p >= ALPHA, f"{test} rejected {name}: p = {p:.3g}"


@pytest.mark.parametrize("factor", WRONG_FACTORS, ids=str)
@pytest.mark.parametrize("name", DISTRIBUTIONS)
@pytest.mark.parametrize("test", SCALE_SENSITIVE)
def test_same_test_rejects_wrong_scale(name: str, test: str, factor: Fraction) -> None:
    """Power: N_POWER = 200,000 samples at 0.7x / 1.3x the parameter are rejected at ALPHA = 1e-6."""
    kind, param = DISTRIBUTIONS[name]
    p = TESTS[test](samples_for(name, factor), Reference(kind, param))
    assert p < ALPHA, f"{test} failed to reject {name} at {factor}x: p = {p:.3g}"


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_symmetry_test_rejects_sign_bias(name: str) -> None:
    """Power: 1,000,000 samples with 3% of negatives flipped positive are rejected at ALPHA = 1e-6."""
    kind, param = DISTRIBUTIONS[name]
    biased = samples_for(name).copy()
    flip = (biased < 0) & (np.random.default_rng(20240601).random(len(biased)) < SIGN_FLIP)
    biased[flip] = -biased[flip]
    p = symmetry_pvalue(biased, Reference(kind, param))
    assert p < ALPHA, f"symmetry failed to reject a sign-biased {name}: p = {p:.3g}"


@pytest.mark.parametrize("name", [n for n, (kind, _) in DISTRIBUTIONS.items() if kind == "laplace"])
def test_laplace_maximum_within_tail_bound(name: str) -> None:
    """The largest |x| of 1,000,000 draws stays below laplace_tail_bound(..., ALPHA) (fails w.p. <= 1e-6)."""
    _, param = DISTRIBUTIONS[name]
    bound = laplace_tail_bound(param.numerator, param.denominator, N_TRUE, ALPHA)
    assert int(np.abs(samples_for(name)).max()) < bound
