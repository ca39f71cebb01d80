"""Unit tests of the exact samplers: reproducibility, validation, overflow caps, fail-closed paths."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from agent.errors import PrivacyError
from agent.kernels.numba_shim import njit
from agent.privacy import bits, sampler
from agent.privacy.bits import ERROR_BOUND, ERROR_OUT_OF_BITS, STATE_ERROR, draw_bernoulli_exp, new_state
from agent.privacy.sampler import (
    SAMPLER_VERSION,
    BitSource,
    DeterministicBitSource,
    discrete_gaussian,
    discrete_laplace,
    gaussian_sigma2_for,
    laplace_scale_for,
    laplace_tail_bound,
)

REPO = Path(__file__).resolve().parents[3]


class ShortSource(BitSource):
    """Returns one byte fewer than asked."""

    def read(self, nbytes: int) -> bytes:
        return os.urandom(max(nbytes - 1, 0))


class DryAfterFirstRead(BitSource):
    """Serves one buffer, then nothing (an entropy source that dies mid-batch)."""

    def __init__(self) -> None:
        self.reads = 0

    def read(self, nbytes: int) -> bytes:
        self.reads += 1
        return os.urandom(nbytes) if self.reads == 1 else b""


class FailingSource(BitSource):
    def read(self, nbytes: int) -> bytes:
        raise OSError("getrandom unavailable")


class CountingSource(DeterministicBitSource):
    def __init__(self, seed_bytes: bytes) -> None:
        super().__init__(seed_bytes)
        self.reads = 0

    def read(self, nbytes: int) -> bytes:
        self.reads += 1
        return super().read(nbytes)


def test_sampler_version_is_a_string() -> None:
    assert isinstance(SAMPLER_VERSION, str) and SAMPLER_VERSION.startswith("cks20")


def test_deterministic_source_reproduces_laplace_and_gaussian() -> None:
    first = discrete_laplace(7, 3, 500, DeterministicBitSource(b"seed"))
    again = discrete_laplace(7, 3, 500, DeterministicBitSource(b"seed"))
    other = discrete_laplace(7, 3, 500, DeterministicBitSource(b"other"))
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    g1 = discrete_gaussian(25, 3, 500, DeterministicBitSource(b"seed"))
    assert np.array_equal(g1, discrete_gaussian(25, 3, 500, DeterministicBitSource(b"seed")))


def test_outputs_are_int64_of_requested_length() -> None:
    for out in (discrete_laplace(2, 1, 17), discrete_gaussian(4, 1, 17)):
        assert out.dtype == np.int64 and out.shape == (17,)
    assert discrete_laplace(2, 1, 0, FailingSource()).shape == (0,)


def test_default_source_reads_os_urandom(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int] = []

    def fake_urandom(n: int) -> bytes:
        asked.append(n)
        return b"\xa5" * n

    monkeypatch.setattr(bits.os, "urandom", fake_urandom)
    assert BitSource().words(3).tolist() == [0xA5A5A5A5] * 3 and asked == [12]


@pytest.mark.parametrize(
    ("num", "den", "count"),
    [(0, 1, 5), (-2, 1, 5), (2, 0, 5), (2.0, 1, 5), (True, 1, 5), (2, 1, -1), (2, 1, 1.5), ("2", 1, 5)],
)
def test_invalid_parameters_raise(num: object, den: object, count: object) -> None:
    with pytest.raises(PrivacyError):
        discrete_laplace(num, den, count)  # type: ignore[arg-type]
    with pytest.raises(PrivacyError):
        discrete_gaussian(num, den, count)  # type: ignore[arg-type]


def test_scale_helpers_return_reduced_fractions() -> None:
    assert laplace_scale_for(1, Fraction(1, 2)) == (2, 1)
    assert laplace_scale_for(3, Fraction(9, 7)) == (7, 3)
    assert gaussian_sigma2_for(2, Fraction(1, 2)) == (4, 1)
    assert gaussian_sigma2_for(1, Fraction(3, 10)) == (5, 3)


@pytest.mark.parametrize("bad", [0.5, Fraction(0), Fraction(-1, 2), True, "1/2"])
def test_scale_helpers_refuse_floats_and_non_positive_budgets(bad: object) -> None:
    with pytest.raises(PrivacyError):
        laplace_scale_for(1, bad)  # type: ignore[arg-type]
    with pytest.raises(PrivacyError):
        gaussian_sigma2_for(1, bad)  # type: ignore[arg-type]


def test_overflow_caps_reject_large_parameters_with_clear_error() -> None:
    cap = sampler.MAX_LAPLACE_SCALE_PART
    with pytest.raises(PrivacyError, match="int64-safe caps"):
        discrete_laplace(cap + 1, 1, 1)
    with pytest.raises(PrivacyError, match="int64-safe caps"):
        discrete_laplace(1, cap + 1, 1)
    with pytest.raises(PrivacyError, match="int64-safe caps"):
        discrete_gaussian(sampler.MAX_GAUSSIAN_SIGMA2_NUM + 1, 1, 1)
    with pytest.raises(PrivacyError, match="int64-safe caps"):
        discrete_gaussian(1, sampler.MAX_GAUSSIAN_SIGMA2_DEN + 1, 1)
    with pytest.raises(PrivacyError, match="int64-safe caps"):
        laplace_scale_for(10**6, Fraction(1, 10**9))
    with pytest.raises(PrivacyError):
        discrete_laplace(1 << 70, 1, 1)


def test_caps_apply_after_reducing_the_fraction() -> None:
    cap = sampler.MAX_LAPLACE_SCALE_PART
    assert discrete_laplace(cap * 4, 4, 3).shape == (3,)
    assert discrete_gaussian(sampler.MAX_GAUSSIAN_SIGMA2_NUM, 1, 3).shape == (3,)


def test_largest_parameters_sample_without_hitting_bounds() -> None:
    x = discrete_gaussian(sampler.MAX_GAUSSIAN_SIGMA2_NUM, sampler.MAX_GAUSSIAN_SIGMA2_DEN - 1, 2000)
    y = discrete_laplace(sampler.MAX_LAPLACE_SCALE_PART, 1, 2000)
    assert x.std() > 1000 and y.std() > 1e12


def test_short_read_fails_closed() -> None:
    with pytest.raises(PrivacyError, match="instead of"):
        discrete_laplace(2, 1, 10, ShortSource())
    with pytest.raises(PrivacyError, match="randomness source failed"):
        discrete_gaussian(4, 1, 10, FailingSource())


def test_source_running_dry_mid_batch_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sampler, "_MAX_FILL_WORDS", 2 * sampler.MARGIN_WORDS)
    source = DryAfterFirstRead()
    result = None
    with pytest.raises(PrivacyError):
        result = discrete_laplace(2, 1, 200_000, source)
    assert result is None and source.reads == 2


def test_refills_continue_between_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sampler, "_MAX_FILL_WORDS", 2 * sampler.MARGIN_WORDS)
    source = CountingSource(b"refill")
    x = discrete_laplace(2, 1, 200_000, source)
    assert source.reads > 3 and x.shape == (200_000,)
    assert abs(float(np.mean(x == 0)) - (1 - math.exp(-0.5)) / (1 + math.exp(-0.5))) < 0.01


def test_buffer_smaller_than_margin_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sampler, "_MAX_FILL_WORDS", 100)
    with pytest.raises(PrivacyError):
        discrete_laplace(2, 1, 10)


def test_kernel_flags_bits_exhausted_mid_sample() -> None:
    state = new_state()
    value = sampler.draw_discrete_laplace(np.zeros(1, dtype=np.uint32), state, 1 << 40, 1, 1 << 20)
    assert value == 0 and state[STATE_ERROR] == ERROR_OUT_OF_BITS


def test_kernel_flags_internal_bound() -> None:
    buf = DeterministicBitSource(b"bound").words(4096)
    state = new_state()
    t, s, v_max, c1, c0, e, d, _, abs_max, _ = sampler._gaussian_params(4, 1)
    value = sampler.draw_discrete_gaussian(buf, state, t, s, v_max, c1, c0, e, d, -1, abs_max, 0)
    assert value == 0 and state[STATE_ERROR] == ERROR_BOUND


def test_internal_bound_raises_and_returns_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sampler, "_laplace_params", lambda t, s: (t, s, -1))
    with pytest.raises(PrivacyError, match="internal bound"):
        discrete_laplace(2, 1, 1000)


@njit
def _bernoulli_exp_hits(buf: np.ndarray, state: np.ndarray, num: int, den: int, n: int) -> int:
    hits = 0
    for _ in range(n):
        hits += draw_bernoulli_exp(buf, state, num, den)
    return hits if state[STATE_ERROR] == 0 else -1


@pytest.mark.parametrize(("num", "den"), [(0, 1), (1, 3), (1, 1), (5, 2), (7, 2)])
def test_bernoulli_exp_has_probability_exp_minus_gamma(num: int, den: int) -> None:
    """200,000 draws of Bernoulli(exp(-num/den)); exact binomial test at alpha = 1e-6."""
    hits = _bernoulli_exp_hits(BitSource().words(1 << 21), new_state(), num, den, 200_000)
    assert hits >= 0
    assert stats.binomtest(hits, 200_000, math.exp(-num / den)).pvalue >= 1e-6


def test_tail_bound_is_smallest_k_meeting_the_failure_probability() -> None:
    def p_max(t: float, n: int, k: int) -> float:
        q = math.exp(-1 / t)
        return -math.expm1(n * math.log1p(-2 * q**k / (1 + q)))

    for num, den, n, beta in [(2, 1, 1000, 1e-6), (7, 3, 10**6, 1e-9), (1, 4, 10, 0.01), (100, 1, 1, 0.5)]:
        k = laplace_tail_bound(num, den, n, beta)
        assert p_max(num / den, n, k) <= beta < p_max(num / den, n, k - 1) or k == 1
    assert laplace_tail_bound(2, 1, 10**6, 1e-6) > laplace_tail_bound(2, 1, 10, 1e-6)
    with pytest.raises(PrivacyError):
        laplace_tail_bound(2, 1, 10, 1.5)


_NO_JIT_SCRIPT = """
import json
from agent.privacy.sampler import DeterministicBitSource as D, discrete_gaussian, discrete_laplace
print(json.dumps([discrete_laplace(7, 3, 30, D(b"nojit")).tolist(),
                  discrete_gaussian(25, 3, 30, D(b"nojit")).tolist(),
                  discrete_gaussian(2, 5, 30, D(b"nojit")).tolist()]))
"""


def test_kernels_agree_with_and_without_jit() -> None:
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", _NO_JIT_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    interpreted = json.loads(done.stdout)
    jitted = [
        discrete_laplace(7, 3, 30, DeterministicBitSource(b"nojit")).tolist(),
        discrete_gaussian(25, 3, 30, DeterministicBitSource(b"nojit")).tolist(),
        discrete_gaussian(2, 5, 30, DeterministicBitSource(b"nojit")).tolist(),
    ]
    assert interpreted == jitted
