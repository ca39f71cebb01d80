"""Throughput of the exact noise samplers against OpenDP's integer Laplace; prints one flat JSON object.

Usage: .venv/bin/python bench/bench_noise.py [--samples N]

Both samplers are exact (CKS20) and draw from a CSPRNG (ours: os.urandom; OpenDP: OpenSSL
RAND_priv_bytes). Our kernels are called once first so the timing sees a warm numba cache. OpenDP
(a bench-only dependency) is timed through its vector API in chunks, including the Python-to-Rust
conversion of the input vector that any caller pays.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.privacy.sampler import SAMPLER_VERSION, discrete_gaussian, discrete_laplace

SCALE = 2
SIGMA2 = 4
CHUNK = 100_000


def rate(draw: Any, samples: int) -> tuple[float, float]:
    """Return (samples per second, sample variance) of one timed call of `draw(samples)`."""
    start = time.perf_counter()
    values = draw(samples)
    elapsed = time.perf_counter() - start
    return samples / elapsed, float(values.var())


def opendp_rate(samples: int) -> dict[str, Any]:
    """OpenDP's integer Laplace (make_laplace on a vector int domain), timed over `samples` draws."""
    try:
        import numpy as np
        import opendp.prelude as dp
    except ImportError as exc:
        return {
            "noise.opendp_laplace_per_s": None,
            "noise.opendp_unavailable_reason": f"import failed: {exc}",
        }
    dp.enable_features("contrib")
    measurement = dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int), scale=float(SCALE))
    zeros = [0] * CHUNK
    measurement(zeros[:10])  # warm up
    drawn: list[int] = []
    start = time.perf_counter()
    while len(drawn) < samples:
        drawn.extend(measurement(zeros))
    elapsed = time.perf_counter() - start
    values = np.asarray(drawn, dtype=np.int64)
    return {
        "noise.opendp_laplace_per_s": round(len(drawn) / elapsed),
        "noise.opendp_laplace_samples": len(drawn),
        "noise.opendp_laplace_variance": round(float(values.var()), 4),
        "noise.opendp_version": importlib.metadata.version("opendp"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000, help="draws per sampler (>= 1,000,000)")
    args = parser.parse_args()
    samples = args.samples

    discrete_laplace(SCALE, 1, 1000)  # load (or compile) the cached kernels before timing
    discrete_gaussian(SIGMA2, 1, 1000)
    laplace_per_s, laplace_var = rate(lambda n: discrete_laplace(SCALE, 1, n), samples)
    gaussian_per_s, gaussian_var = rate(lambda n: discrete_gaussian(SIGMA2, 1, n), samples)

    result: dict[str, Any] = {
        "noise.sampler_version": SAMPLER_VERSION,
        "noise.samples": samples,
        "noise.laplace_scale": SCALE,
        "noise.exact_laplace_per_s": round(laplace_per_s),
        "noise.exact_laplace_variance": round(laplace_var, 4),
        "noise.gaussian_sigma2": SIGMA2,
        "noise.exact_gaussian_per_s": round(gaussian_per_s),
        "noise.exact_gaussian_variance": round(gaussian_var, 4),
    }
    result.update(opendp_rate(samples))
    opendp_per_s = result["noise.opendp_laplace_per_s"]
    result["noise.speedup_vs_opendp"] = round(laplace_per_s / opendp_per_s, 2) if opendp_per_s else None
    print(json.dumps(result))


if __name__ == "__main__":
    main()
