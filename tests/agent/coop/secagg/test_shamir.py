"""Shamir sharing over GF(2**521 - 1): any t shares rebuild, t - 1 do not, bad input is refused."""

from __future__ import annotations

import contextlib
import itertools
import os

import pytest

from agent.coop.secagg.errors import SecAggError
from agent.coop.secagg.shamir import combine, lagrange_at_zero, split


def test_any_threshold_subset_rebuilds_the_secret() -> None:
    secret = os.urandom(32)
    shares = split(secret, 3, [1, 2, 3, 4, 5])
    for subset in itertools.combinations(shares, 3):
        assert combine(list(subset), 3) == secret


def test_fewer_shares_than_the_threshold_are_refused_and_interpolate_elsewhere() -> None:
    secret = os.urandom(32)
    shares = split(secret, 4, [3, 7, 9, 11, 20])
    with pytest.raises(SecAggError):
        combine(shares[:3], 4)
    # Three points of a cubic interpolate elsewhere: almost surely above 2**256 (refused as corrupt).
    with contextlib.suppress(SecAggError):
        assert combine(shares[:3], 3) != secret


def test_a_shared_basis_gives_the_same_secret() -> None:
    secrets_ = [os.urandom(32) for _ in range(5)]
    xs = [2, 5, 6, 9]
    basis = lagrange_at_zero(xs)
    for secret in secrets_:
        shares = [s for s in split(secret, 4, [1, 2, 5, 6, 9, 10]) if s.x in xs]
        assert combine(shares, 4, basis) == secret


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(SecAggError):
        split(b"short", 2, [1, 2])
    with pytest.raises(SecAggError):
        split(os.urandom(32), 3, [1, 2])
    with pytest.raises(SecAggError):
        split(os.urandom(32), 2, [1, 1, 2])
