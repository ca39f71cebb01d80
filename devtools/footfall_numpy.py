"""The footfall kernel in plain NumPy: the benchmark's baseline and a second reference for the tests."""

from __future__ import annotations

import numpy as np

from agent.kernels.footfall import Int64Array


def count_footfall_numpy(
    window_idx: Int64Array,
    door_idx: Int64Array,
    entries: Int64Array,
    exits: Int64Array,
    n_windows: int,
    n_doors: int,
) -> Int64Array:
    """`agent.kernels.footfall.count_footfall` with whole-array operations (np.bincount)."""
    keep = (window_idx >= 0) & (window_idx < n_windows) & (door_idx >= 0) & (door_idx < n_doors)
    flat = window_idx[keep] * n_doors + door_idx[keep]
    out = np.zeros((n_windows * n_doors, 2), dtype=np.int64)
    out[:, 0] = np.bincount(flat, weights=entries[keep], minlength=n_windows * n_doors).astype(np.int64)
    out[:, 1] = np.bincount(flat, weights=exits[keep], minlength=n_windows * n_doors).astype(np.int64)
    return out.reshape(n_windows, n_doors, 2)
