"""Secure aggregation with distributed noise: accuracy against local noise, CPU per round, bytes per shop.

Usage: .venv/bin/python bench/bench_secagg.py [--trials N] [--sizes 10,50,200]

- `secagg.district_rmse_ratio`: RMSE of a 20-shop district total under distributed discrete Gaussian
  noise (each shop's share sized for threshold 14, so 30 % may drop) divided by the RMSE of the same
  total when each shop releases its own value with a discrete Gaussian at the same rho (the same-run
  baseline); both measured from exact samples. Goal <= 0.3. The pure-DP baseline (each shop's discrete
  Laplace at epsilon with rho = epsilon^2 / 2) is reported too.
- per-round CPU (time.process_time) of each shop and of the hub for one whole round in one process,
  every message encoded and decoded, 10 % of the shops dropping before their masked input (so the hub
  rebuilds their mask keys); vector of 504 entries (a day of 24 hours x 21 streams).
- bytes per shop per round: the canonical JSON a shop sends plus what it receives.
Prints ONE flat JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.coop.secagg.hub import HubRound
from agent.coop.secagg.loopback import enrol, open_shops, propose, run_round
from agent.coop.secagg.noise import draw_noise_share, plan_noise
from agent.privacy.sampler import discrete_gaussian, discrete_laplace, gaussian_sigma2_for

SENSITIVITY = 20_000  # a basket's revenue clamp in cents (L1 = L2: one basket touches one category cell)
EPSILON = Fraction(1, 2)
RHO = EPSILON**2 / 2  # what pure epsilon-DP implies in zCDP
SHOPS, THRESHOLD = 20, 14
LENGTH = 24 * 21


def rmse_ratio(trials: int) -> dict[str, object]:
    """Distributed noise against local noise for a 20-shop total, same rho, `trials` totals each."""
    _keys, roster = enrol(SHOPS)
    config = propose(roster, "bench-rmse", THRESHOLD, trials, 10**6, SENSITIVITY, RHO)
    plan = plan_noise(config)
    distributed = sum(draw_noise_share(config, plan) for _ in range(SHOPS)).astype(np.float64)
    num, den = gaussian_sigma2_for(SENSITIVITY, RHO)
    local = sum(discrete_gaussian(num, den, trials) for _ in range(SHOPS)).astype(np.float64)
    laplace = sum(discrete_laplace(SENSITIVITY * EPSILON.denominator, EPSILON.numerator, trials) for _ in range(SHOPS))
    rmse = {
        name: float(np.sqrt(np.mean(v.astype(np.float64) ** 2)))
        for name, v in (("distributed", distributed), ("local", local), ("laplace", laplace))
    }
    return {
        "secagg.district_rmse_ratio": round(rmse["distributed"] / rmse["local"], 4),
        "secagg.district_rmse_ratio_theory": round(math.sqrt(1 / THRESHOLD), 4),
        "secagg.district_rmse_ratio_vs_local_laplace": round(rmse["distributed"] / rmse["laplace"], 4),
        "secagg.district_rmse_distributed": round(rmse["distributed"], 1),
        "secagg.district_rmse_local_gaussian": round(rmse["local"], 1),
        "secagg.district_rmse_local_laplace": round(rmse["laplace"], 1),
        "secagg.rmse_trials": trials,
        "secagg.rho": str(RHO),
        "secagg.rho_bound_kls21": plan.rho_bound,
        "secagg.epsilon_at_delta_1e-6": round(plan.epsilon(1e-6), 4),
        "secagg.share_sigma2": str(plan.share_sigma2),
    }


def one_round(n: int, neighbours: int) -> dict[str, float]:
    """CPU and bytes of one round with `n` shops (10 % drop before their masked input)."""
    keys, roster = enrol(n)
    threshold = math.ceil(0.7 * n)
    config = propose(roster, f"bench-{n}-{neighbours}", threshold, LENGTH, 10**9, SENSITIVITY, RHO, neighbours)
    shops = open_shops(keys, roster, config)
    hub = HubRound(roster, config)
    rng = np.random.default_rng(n)
    inputs = {s: rng.integers(0, 10**6, LENGTH) for s in shops}
    dropped = list(config.participants)[: n // 10]
    wall = time.perf_counter()
    report = run_round(shops, hub, inputs, drop_before_input=dropped)
    wall = time.perf_counter() - wall
    assert report.aborted is None and report.total is not None, report.aborted
    true = sum(inputs[s].astype(np.int64) + shops[s].noise for s in report.survivors)
    assert np.array_equal(report.total, true), "unmasked sum is wrong"
    cpu = list(report.shop_cpu_s.values())
    sizes = list(report.shop_bytes.values())
    return {
        "shop_cpu_s_mean": round(statistics.fmean(cpu), 4),
        "shop_cpu_s_max": round(max(cpu), 4),
        "hub_cpu_s": round(report.hub_cpu_s, 3),
        "bytes_per_shop_mean": round(statistics.fmean(sizes)),
        "bytes_per_shop_max": max(sizes),
        "wall_s": round(wall, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20_000, help="district totals drawn per method")
    parser.add_argument("--sizes", default="10,50,200", help="shop counts for the round timings")
    args = parser.parse_args()
    discrete_gaussian(7, 3, 10)  # load (or compile) the cached kernels before timing
    discrete_laplace(3, 1, 10)
    result: dict[str, object] = rmse_ratio(args.trials)
    result["secagg.vector_length"] = LENGTH
    sizes = [int(x) for x in args.sizes.split(",")]
    for n in sizes:
        for key, value in one_round(n, 0).items():
            result[f"secagg.n{n}.{key}"] = value
    largest = max(sizes)
    neighbours = 2 * math.ceil(math.log2(largest))  # SecAgg+: O(log n) neighbours
    result["secagg.plus_neighbours"] = neighbours
    for key, value in one_round(largest, neighbours).items():
        result[f"secagg.plus.n{largest}.{key}"] = value
    print(json.dumps(result))


if __name__ == "__main__":
    main()
