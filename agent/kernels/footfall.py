"""Aggregate door events into entries and exits per window and door."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from agent.kernels.numba_shim import njit

Int64Array = npt.NDArray[np.int64]


@njit
def count_footfall(
    window_idx: Int64Array,
    door_idx: Int64Array,
    entries: Int64Array,
    exits: Int64Array,
    n_windows: int,
    n_doors: int,
) -> Int64Array:
    """Sum entries and exits into an (n_windows, n_doors, 2) table; out-of-range rows are skipped.

    Skipping (rather than clamping) matters: an event with an unknown door or outside the windows
    asked for must not leak into a released cell.
    """
    out = np.zeros((n_windows, n_doors, 2), dtype=np.int64)
    for i in range(window_idx.shape[0]):
        w = window_idx[i]
        d = door_idx[i]
        if w < 0 or w >= n_windows or d < 0 or d >= n_doors:
            continue
        out[w, d, 0] += entries[i]
        out[w, d, 1] += exits[i]
    return out
