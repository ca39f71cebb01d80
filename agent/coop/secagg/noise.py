"""Distributed discrete Gaussian noise: each shop's share, and the privacy of the sum the hub unmasks.

Sizing. The round targets rho-zCDP for the district sum. A central release would add one discrete
Gaussian of variance sigma^2 = Delta^2 / (2 rho). Each shop adds an exact discrete Gaussian of variance

    s^2 = sigma^2 / (t - c)

(t = the round's threshold, the fewest shops whose sum honest shops let the hub unmask; c = shops assumed
to collude with the hub, whose noise the hub knows and subtracts). Any sum the hub can unmask contains at
least t - c honest shares, so at least sigma^2 of noise.

Accounting. A sum of m independent discrete Gaussians N_Z(0, s^2) is not itself a discrete Gaussian;
Kairouz, Liu, Steinke, "The Distributed Discrete Gaussian Mechanism for Federated Learning with Secure
Aggregation", ICML 2021 (arXiv 2102.06387), Theorem 1 / Proposition 14: for s >= 1/2, adding the sum to
a d-dimensional integer query of L2 sensitivity Delta is rho-zCDP with

    rho = 1/2 * (Delta / (sqrt(m) * s) + tau * sqrt(d))^2,   tau = 10 * sum_{k=1}^{m-1} exp(-2 pi^2 s^2 k/(k+1)).

The first term decreases and tau increases with m, so evaluating the first at m = t - c and tau at
m = n (every participant) bounds rho for every survivor set the hub may unmask. For s >= 2, tau < 1e-15
* n and the bound equals the central rho = Delta^2 / (2 sigma^2) to float precision. Conversion to
(epsilon, delta): epsilon = rho + 2 sqrt(rho ln(1/delta)) (Bun and Steinke 2016, Proposition 1.3).
Floats appear only in this accounting, never in the noise path.

Where the share is drawn: the resident agent never loads numba, so the agent passes a `draw` (its kernel
worker's discrete Gaussian, fed by the worker's own os.urandom); without one, the share is drawn in this
process (tests, the benchmark, the loopback runner), which then loads the sampler.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from agent.coop.secagg.errors import SecAggError
from agent.coop.secagg.messages import RoundConfig
from agent.privacy.bit_source import BitSource, Int64Array

#: A share whose noise exceeds this many standard deviations has probability below exp(-2000); the
#: modulus headroom check uses it to show the sum cannot wrap around mod 2**64.
TAIL_SIGMAS = 64
HEADROOM = 1 << 62
#: Draws `count` exact discrete Gaussian samples of variance num/den (CKS20, os.urandom where it runs).
NoiseDraw = Callable[[int, int, int], Int64Array]


@dataclass(frozen=True)
class NoisePlan:
    """The noise of one round: each share's variance and the bound on the sum's privacy."""

    share_sigma2: Fraction
    central_sigma2: Fraction
    honest_minimum: int
    rho_bound: float
    tau: float

    def epsilon(self, delta: float) -> float:
        """(epsilon, delta)-DP of the unmasked sum implied by rho_bound (Bun-Steinke 2016)."""
        return self.rho_bound + 2.0 * math.sqrt(self.rho_bound * math.log(1.0 / delta))


def distributed_rho(sensitivity: int, share_sigma2: float, fewest: int, most: int, dims: int) -> tuple[float, float]:
    """KLS21 Theorem 1 bound (rho, tau) for any sum of between `fewest` and `most` shares of variance share_sigma2."""
    if share_sigma2 < 0.25:
        raise SecAggError("each shop's noise share needs sigma >= 1/2 for the distributed discrete Gaussian bound")
    tau = 10.0 * sum(math.exp(-2.0 * math.pi**2 * share_sigma2 * k / (k + 1)) for k in range(1, most))
    rho = 0.5 * (sensitivity / math.sqrt(fewest * share_sigma2) + tau * math.sqrt(dims)) ** 2
    return rho, tau


def plan_noise(config: RoundConfig) -> NoisePlan:
    """Each shop's share of noise for `config`, and the accounting for the sum."""
    honest = config.threshold - config.colluders
    if honest < 1:
        raise SecAggError(f"threshold {config.threshold} minus colluders {config.colluders} leaves no honest shop")
    if config.sensitivity < 1 or config.rho_num < 1 or config.rho_den < 1:
        raise SecAggError("sensitivity and rho must be positive")
    central = Fraction(config.sensitivity**2) / (2 * Fraction(config.rho_num, config.rho_den))
    share = central / honest
    rho, tau = distributed_rho(config.sensitivity, float(share), honest, len(config.participants), config.length)
    return NoisePlan(share, central, honest, rho, tau)


def check_headroom(config: RoundConfig, plan: NoisePlan) -> None:
    """Refuse a round whose sum could wrap around mod 2**64 (a correctness failure, not a privacy one)."""
    per_shop = config.value_bound + TAIL_SIGMAS * math.isqrt(math.ceil(plan.share_sigma2) + 1)
    if len(config.participants) * per_shop >= HEADROOM:
        raise SecAggError(
            f"{len(config.participants)} shops x (bound {config.value_bound} + noise tail) may overflow 2**62; "
            "lower value_bound or split the round"
        )


def draw_noise_share(
    config: RoundConfig, plan: NoisePlan, bits: BitSource | None = None, draw: NoiseDraw | None = None
) -> Int64Array:
    """One shop's exact discrete Gaussian noise for the round's vector (CKS20, os.urandom unless `bits`).

    `draw` (the agent's kernel worker) draws it elsewhere; a seeded `bits` cannot cross a process, so not both.
    """
    share = plan.share_sigma2
    if draw is None:
        from agent.privacy.sampler import discrete_gaussian  # numba: loaded only where the share is drawn here

        return discrete_gaussian(share.numerator, share.denominator, config.length, bits)
    if bits is not None:
        raise SecAggError("a seeded bit source draws in this process; it cannot be given with another draw")
    noise = np.asarray(draw(share.numerator, share.denominator, config.length))
    if noise.shape != (config.length,) or noise.dtype != np.int64:
        # Never mask with a short or mistyped share: the round's noise would silently be wrong.
        raise SecAggError(f"the noise draw returned {noise.dtype} {noise.shape}, not {config.length} int64 samples")
    return noise
