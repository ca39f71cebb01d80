"""The footfall kernel against a slow, obviously-correct reference, with and without JIT."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from agent.kernels.footfall import count_footfall
from devtools.footfall_numpy import count_footfall_numpy


def reference(window_idx, door_idx, entries, exits, n_windows, n_doors):  # type: ignore[no-untyped-def]
    table = [[[0, 0] for _ in range(n_doors)] for _ in range(n_windows)]
    for w, d, e, x in zip(window_idx.tolist(), door_idx.tolist(), entries.tolist(), exits.tolist(), strict=True):
        if 0 <= w < n_windows and 0 <= d < n_doors:
            table[w][d][0] += e
            table[w][d][1] += x
    return np.array(table, dtype=np.int64).reshape(n_windows, n_doors, 2)


def random_events(seed: int, n: int, n_windows: int, n_doors: int):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    # Indices deliberately stray outside the table so the skip rule is exercised.
    return (
        rng.integers(-2, n_windows + 2, n).astype(np.int64),
        rng.integers(-1, n_doors + 1, n).astype(np.int64),
        rng.integers(0, 4, n).astype(np.int64),
        rng.integers(0, 4, n).astype(np.int64),
    )


@pytest.mark.parametrize("seed", range(5))
def test_kernel_matches_reference(seed: int) -> None:
    events = random_events(seed, 5_000, 24, 3)
    expected = reference(*events, 24, 3)
    np.testing.assert_array_equal(count_footfall(*events, 24, 3), expected)
    np.testing.assert_array_equal(count_footfall_numpy(*events, 24, 3), expected)


def test_kernel_on_no_events_gives_zeros() -> None:
    empty = np.zeros(0, dtype=np.int64)
    out = count_footfall(empty, empty, empty, empty, 2, 2)
    assert out.shape == (2, 2, 2) and not out.any()


def test_unknown_door_never_reaches_a_cell() -> None:
    one = np.array([0], dtype=np.int64)
    out = count_footfall(one * 0, np.array([-1], dtype=np.int64), one * 5, one * 5, 1, 1)
    assert not out.any()


def test_same_results_with_numba_jit_disabled() -> None:
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k", "not jit_disabled"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed" in result.stdout
