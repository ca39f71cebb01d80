"""Exact discrete Laplace and discrete Gaussian noise (CKS20), integer-only, fed by the OS CSPRNG.

Canonne, Kamath, Steinke 2020 (arXiv 2004.00010): Alg. 2 (discrete Laplace with rational scale)
and Alg. 3 (discrete Gaussian by rejection from discrete Laplace), on top of the Bernoulli kernels
in `agent.privacy.bits`. No floats, no log/exp and no library RNG in the noise path.

Failure is closed: if randomness runs short in the middle of a sample, or a guard against int64
overflow is hit (each guard is placed where reaching it has probability below 2**-64 per sample),
the call raises PrivacyError and returns nothing. A sample is never restarted or discarded half way,
because dropping long draws would bias the distribution; the kernels only stop *between* samples,
when fewer than `MARGIN_WORDS` words of randomness remain, and the caller refills and continues.

Running time depends on the noise drawn (Jin et al. 2022, arXiv 2112.05307): draw a whole window's
noise in one batch, decoupled from publication.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from fractions import Fraction

import numpy as np

from agent.errors import PrivacyError
from agent.kernels.numba_shim import njit
from agent.privacy.bits import (
    ERROR_BOUND,
    ERROR_NONE,
    ERROR_OUT_OF_BITS,
    PRODUCT_LIMIT,
    STATE_ERROR,
    STATE_WORD,
    BitSource,
    DeterministicBitSource,
    Int64Array,
    Word32Array,
    draw_bernoulli_exp,
    draw_bernoulli_exp_fraction,
    draw_bits,
    draw_uniform_below,
    new_state,
)
from agent.privacy.sampler_version import SAMPLER_VERSION

__all__ = [
    "MAX_GAUSSIAN_SIGMA2_DEN",
    "MAX_GAUSSIAN_SIGMA2_NUM",
    "MAX_LAPLACE_SCALE_PART",
    "SAMPLER_VERSION",
    "BitSource",
    "DeterministicBitSource",
    "discrete_gaussian",
    "discrete_laplace",
    "gaussian_sigma2_for",
    "laplace_scale_for",
    "laplace_tail_bound",
]


#: Caps (after reducing the fraction) that keep every kernel product below 2**62.
MAX_LAPLACE_SCALE_PART = 1 << 48
MAX_GAUSSIAN_SIGMA2_NUM = 1 << 48
MAX_GAUSSIAN_SIGMA2_DEN = 1 << 24

#: A sample is only started with at least this many unread 32-bit words (2**18 bits) in the buffer.
MARGIN_WORDS = 1 << 13
_MAX_FILL_WORDS = 1 << 21
_MAX_COUNT = 1 << 31


@njit
def draw_discrete_laplace(buf: Word32Array, state: Int64Array, t: int, s: int, v_max: int) -> int:
    """One draw with pmf proportional to exp(-|x| s/t) (CKS20 Alg. 2); on failure 0 and the error flag."""
    while True:
        u = draw_uniform_below(buf, state, t)
        keep = draw_bernoulli_exp_fraction(buf, state, u, t)
        if state[STATE_ERROR] != ERROR_NONE:
            return 0
        if keep == 0:
            continue
        v = 0
        while draw_bernoulli_exp_fraction(buf, state, 1, 1) == 1:
            v += 1
            if v > v_max:
                state[STATE_ERROR] = ERROR_BOUND
                return 0
        if state[STATE_ERROR] != ERROR_NONE:
            return 0
        # u + t*v is geometric with ratio exp(-1/t); dividing by s gives ratio exp(-s/t).
        y = (u + t * v) // s
        negative = draw_bits(buf, state, 1)
        if state[STATE_ERROR] != ERROR_NONE:
            return 0
        if negative == 1 and y == 0:
            continue  # "-0" would give zero twice the mass
        return -y if negative == 1 else y


@njit
def fill_discrete_laplace(
    out: Int64Array,
    start: int,
    buf: Word32Array,
    state: Int64Array,
    t: int,
    s: int,
    v_max: int,
) -> int:
    """Fill out[start:] until done or the buffer margin is reached; return the next index to fill."""
    i = start
    while i < out.shape[0]:
        if buf.shape[0] - state[STATE_WORD] < MARGIN_WORDS:
            return i
        value = draw_discrete_laplace(buf, state, t, s, v_max)
        if state[STATE_ERROR] != ERROR_NONE:
            return i
        out[i] = value
        i += 1
    return i


@njit
def draw_discrete_gaussian(
    buf: Word32Array,
    state: Int64Array,
    t: int,
    s: int,
    v_max: int,
    c1: int,
    c0: int,
    e: int,
    d: int,
    dist_max: int,
    abs_max: int,
    whole_saturated: int,
) -> int:
    """One discrete Gaussian draw (CKS20 Alg. 3, generalised to a rational Laplace scale t/s).

    Accept a Laplace draw y with probability exp(-gamma), gamma = (c1*|y| - c0)**2 * e / d.
    """
    while True:
        y = draw_discrete_laplace(buf, state, t, s, v_max)
        if state[STATE_ERROR] != ERROR_NONE:
            return 0
        magnitude = abs(y)
        saturated = magnitude > abs_max
        dist = 0
        if not saturated:
            dist = abs(c1 * magnitude - c0)
            saturated = dist > dist_max
        if saturated:
            # gamma > whole_saturated >= 2**13: the first whole_saturated exp(-1) trials decide,
            # unless all succeed (probability <= exp(-8192)), which is an internal bound: fail closed.
            survived = 1
            for _ in range(whole_saturated):
                if draw_bernoulli_exp_fraction(buf, state, 1, 1) == 0:
                    survived = 0
                    break
            if state[STATE_ERROR] != ERROR_NONE:
                return 0
            if survived == 1:
                state[STATE_ERROR] = ERROR_BOUND
                return 0
            continue
        accept = draw_bernoulli_exp(buf, state, dist * dist * e, d)
        if state[STATE_ERROR] != ERROR_NONE:
            return 0
        if accept == 1:
            return y


@njit
def fill_discrete_gaussian(
    out: Int64Array,
    start: int,
    buf: Word32Array,
    state: Int64Array,
    t: int,
    s: int,
    v_max: int,
    c1: int,
    c0: int,
    e: int,
    d: int,
    dist_max: int,
    abs_max: int,
    whole_saturated: int,
) -> int:
    """Fill out[start:] until done or the buffer margin is reached; return the next index to fill."""
    i = start
    while i < out.shape[0]:
        if buf.shape[0] - state[STATE_WORD] < MARGIN_WORDS:
            return i
        value = draw_discrete_gaussian(buf, state, t, s, v_max, c1, c0, e, d, dist_max, abs_max, whole_saturated)
        if state[STATE_ERROR] != ERROR_NONE:
            return i
        out[i] = value
        i += 1
    return i


def _check_int(name: str, value: object, low: int, high: int) -> int:
    """Return `value` as an int if it is an integer in [low, high], else raise PrivacyError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise PrivacyError(f"{name} must be an integer, got {value!r}; pass an int (no floats in noise)")
    number = int(value)
    if not low <= number <= high:
        raise PrivacyError(f"{name}={number} is outside [{low}, {high}]; choose a value in range")
    return number


def _check_fraction(name: str, value: object) -> Fraction:
    """Return `value` as a positive Fraction (int or Fraction accepted; floats refused)."""
    if isinstance(value, bool) or not isinstance(value, Fraction | int):
        raise PrivacyError(f"{name} must be a fractions.Fraction, got {value!r}; e.g. Fraction(1, 2)")
    fraction = Fraction(value)
    if fraction <= 0:
        raise PrivacyError(f"{name}={fraction} must be positive")
    return fraction


def _reduced(name: str, num: object, den: object, num_cap: int, den_cap: int) -> tuple[int, int]:
    """Validate a positive rational num/den, reduce it, and enforce the overflow caps."""
    n = _check_int(f"{name} numerator", num, 1, 1 << 62)
    m = _check_int(f"{name} denominator", den, 1, 1 << 62)
    g = math.gcd(n, m)
    n, m = n // g, m // g
    if n > num_cap or m > den_cap:
        raise PrivacyError(
            f"{name} {n}/{m} exceeds the int64-safe caps (numerator <= 2**{num_cap.bit_length() - 1}, "
            f"denominator <= 2**{den_cap.bit_length() - 1}); use a coarser unit or a simpler fraction"
        )
    return n, m


def _laplace_params(t: int, s: int) -> tuple[int, int, int]:
    """Kernel arguments for a reduced Laplace scale t/s: (t, s, largest safe v)."""
    return t, s, (PRODUCT_LIMIT - t) // t


def _gaussian_params(a: int, b: int) -> tuple[int, ...]:
    """Kernel arguments for sigma^2 = a/b (reduced, within caps).

    sigma < 1: Laplace scale 1, centre a/b, gamma = (b|y| - a)^2 / (2ab)  (CKS20's t = 1).
    sigma >= 1: Laplace scale sigma^2/k with k = floor(sigma), so the centre sigma^2/scale is the
    integer k and gamma = (|y| - k)^2 * b / (2a); the denominator stays near sigma^2, not sigma^4.
    """
    if a < b:
        t, s, c1, c0, e, d = 1, 1, b, a, 1, 2 * a * b
    else:
        k = math.isqrt(a // b)
        g = math.gcd(a, b * k)
        t, s, c1, c0, e, d = a // g, (b * k) // g, 1, k, b, 2 * a
    g = math.gcd(e, d)
    e, d = e // g, d // g
    dist_max = math.isqrt(PRODUCT_LIMIT // e)
    abs_max = PRODUCT_LIMIT // c1
    whole_saturated = PRODUCT_LIMIT // d
    t, s, v_max = _laplace_params(t, s)
    return t, s, v_max, c1, c0, e, d, dist_max, abs_max, whole_saturated


def _sample(
    fill: Callable[..., int],
    params: tuple[int, ...],
    count: int,
    bits: BitSource | None,
) -> Int64Array:
    """Run a fill kernel to `count` samples, refilling randomness between samples; fail closed."""
    source = BitSource() if bits is None else bits
    out = np.zeros(count, dtype=np.int64)
    done = 0
    words_per_sample = 4.0
    while done < count:
        want = MARGIN_WORDS + int((count - done) * words_per_sample * 1.25) + 64
        buf = source.words(min(max(want, 2 * MARGIN_WORDS), _MAX_FILL_WORDS))
        state = new_state()
        reached = fill(out, done, buf, state, *params)
        error = int(state[STATE_ERROR])
        if error != ERROR_NONE or reached <= done:
            out.fill(0)
            if error == ERROR_NONE:
                raise PrivacyError(
                    f"randomness buffer of {buf.shape[0]} words is below the {MARGIN_WORDS}-word margin; "
                    "nothing released; this is a sampler bug, report it"
                )
            if error == ERROR_OUT_OF_BITS:
                raise PrivacyError(
                    "a single noise draw exhausted its randomness buffer; nothing released; retry the window"
                )
            raise PrivacyError(
                f"sampler stopped at an internal bound (code {error}); nothing released; check the noise parameters"
            )
        words_per_sample = max(0.1, int(state[STATE_WORD]) / (reached - done))
        done = reached
    return out


def discrete_laplace(scale_num: int, scale_den: int, count: int, bits: BitSource | None = None) -> Int64Array:
    """Draw `count` exact discrete Laplace samples, pmf ∝ exp(-|x|/t) with t = scale_num/scale_den."""
    t, s = _reduced("Laplace scale", scale_num, scale_den, MAX_LAPLACE_SCALE_PART, MAX_LAPLACE_SCALE_PART)
    n = _check_int("count", count, 0, _MAX_COUNT)
    return _sample(fill_discrete_laplace, _laplace_params(t, s), n, bits)


def discrete_gaussian(sigma2_num: int, sigma2_den: int, count: int, bits: BitSource | None = None) -> Int64Array:
    """Draw `count` exact discrete Gaussian samples, pmf ∝ exp(-x^2/(2 sigma^2)), sigma^2 = num/den."""
    a, b = _reduced("Gaussian sigma^2", sigma2_num, sigma2_den, MAX_GAUSSIAN_SIGMA2_NUM, MAX_GAUSSIAN_SIGMA2_DEN)
    n = _check_int("count", count, 0, _MAX_COUNT)
    return _sample(fill_discrete_gaussian, _gaussian_params(a, b), n, bits)


def laplace_scale_for(sensitivity: int, epsilon: Fraction) -> tuple[int, int]:
    """Return t = sensitivity/epsilon as a reduced (numerator, denominator) for epsilon-DP."""
    delta = _check_int("sensitivity", sensitivity, 1, MAX_LAPLACE_SCALE_PART)
    scale = Fraction(delta) / _check_fraction("epsilon", epsilon)
    return _reduced("Laplace scale", scale.numerator, scale.denominator, MAX_LAPLACE_SCALE_PART, MAX_LAPLACE_SCALE_PART)


def gaussian_sigma2_for(sensitivity: int, rho: Fraction) -> tuple[int, int]:
    """Return sigma^2 = sensitivity^2 / (2 rho) as a reduced (numerator, denominator) for rho-zCDP."""
    delta = _check_int("sensitivity", sensitivity, 1, MAX_GAUSSIAN_SIGMA2_NUM)
    sigma2 = Fraction(delta * delta) / (2 * _check_fraction("rho", rho))
    return _reduced(
        "Gaussian sigma^2",
        sigma2.numerator,
        sigma2.denominator,
        MAX_GAUSSIAN_SIGMA2_NUM,
        MAX_GAUSSIAN_SIGMA2_DEN,
    )


def laplace_tail_bound(scale_num: int, scale_den: int, count: int, failure_probability: float) -> int:
    """Smallest k with P(max of `count` iid |X| >= k) <= failure_probability (floats; docs and tests only).

    P(|X| >= k) = 2 q^k / (1 + q) for k >= 1, q = exp(-1/t); P(max >= k) = 1 - (1 - p_k)^count,
    evaluated with log1p/expm1 and inflated by 1e-9 relative so float rounding stays conservative.
    """
    t, s = _reduced("Laplace scale", scale_num, scale_den, MAX_LAPLACE_SCALE_PART, MAX_LAPLACE_SCALE_PART)
    n = _check_int("count", count, 1, _MAX_COUNT)
    beta = float(failure_probability)
    if not 0.0 < beta < 1.0:
        raise PrivacyError(f"failure_probability={failure_probability!r} must be in (0, 1)")
    log_q = -s / t

    def prob_max_at_least(k: int) -> float:
        log_p = math.log(2.0) + k * log_q - math.log1p(math.exp(log_q))
        return -math.expm1(n * math.log1p(-math.exp(log_p))) * (1.0 + 1e-9)

    # The union bound n * p_k <= beta gives an upper starting point; walk down to the smallest k.
    k = max(1, math.ceil((math.log(beta / n) - math.log(2.0) + math.log1p(math.exp(log_q))) / log_q))
    while prob_max_at_least(k) > beta:
        k += 1
    while k > 1 and prob_max_at_least(k - 1) <= beta:
        k -= 1
    return k
