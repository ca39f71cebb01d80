"""Thermal counting, steps 1-3: background, foreground threshold, and blobs (see thermal.py for the whole).

Pure numba kernels on preallocated arrays. Frames are (rows, cols) arrays of °C×100.
"""

from __future__ import annotations

import math

import numpy as np

from agent.kernels.numba_shim import njit
from agent.kernels.thermal_params import (  # noqa: F401 - the kernels' constants, declared without numba
    F64,
    I32,
    I64,
    INITIAL_SIGMA,
    MAX_BLOBS,
    MAX_TRACKS,
    N_PARAMS,
    N_TRACK_COLS,
    P_ALPHA,
    P_K_SIGMA,
    P_LINE_A,
    P_LINE_B,
    P_MAX_JUMP,
    P_MAX_MISSING,
    P_MIN_DELTA,
    P_MIN_PIXELS,
    P_PERSON_WIDTH,
    P_VALLEY_RATIO,
    P_WARMUP,
    P_WIDE_FACTOR,
    T_ACTIVE,
    T_AGE,
    T_BORN_Y,
    T_MATCHED,
    T_MISSING,
    T_SIDE,
    T_VX,
    T_VY,
    T_X,
    T_Y,
    U8,
)


@njit
def update_background(frame: F64, bg: F64, var: F64, mask: U8, alpha: float, n_seen: int) -> None:
    """Blend `frame` into the background mean and variance, except on or next to foreground pixels."""
    rows, cols = frame.shape
    if n_seen == 0:
        for r in range(rows):
            for c in range(cols):
                bg[r, c] = frame[r, c]
                var[r, c] = INITIAL_SIGMA * INITIAL_SIGMA
        return
    rate = max(alpha, 1.0 / (n_seen + 1.0))  # a running mean while warming up, then slow
    for r in range(rows):
        for c in range(cols):
            near = False
            for dr in range(-1, 2):
                for dc in range(-1, 2):
                    rr, cc = r + dr, c + dc
                    if 0 <= rr < rows and 0 <= cc < cols and mask[rr, cc]:
                        near = True
            if near:
                continue
            d = frame[r, c] - bg[r, c]
            bg[r, c] += rate * d
            var[r, c] += rate * (d * d - var[r, c])


@njit
def threshold_frame(frame: F64, bg: F64, var: F64, k_sigma: float, min_delta: float, excess: F64, mask: U8) -> int:
    """Mark pixels warmer than background by max(k·sigma, min_delta); returns how many."""
    rows, cols = frame.shape
    count = 0
    for r in range(rows):
        for c in range(cols):
            d = frame[r, c] - bg[r, c]
            excess[r, c] = d
            limit = max(k_sigma * math.sqrt(var[r, c]), min_delta)
            if d > limit:
                mask[r, c] = 1
                count += 1
            else:
                mask[r, c] = 0
    return count


@njit
def label_blobs(mask: U8, labels: I32, stack: I32) -> int:
    """Label 8-connected foreground components 1..n in raster order of their first pixel; returns n."""
    rows, cols = mask.shape
    labels[:, :] = 0
    n = 0
    for r0 in range(rows):
        for c0 in range(cols):
            if mask[r0, c0] == 0 or labels[r0, c0] != 0:
                continue
            n += 1
            labels[r0, c0] = n
            stack[0] = r0 * cols + c0
            top = 1
            while top > 0:
                top -= 1
                r = stack[top] // cols
                c = stack[top] % cols
                for dr in range(-1, 2):
                    for dc in range(-1, 2):
                        rr, cc = r + dr, c + dc
                        if 0 <= rr < rows and 0 <= cc < cols and mask[rr, cc] and labels[rr, cc] == 0:
                            labels[rr, cc] = n
                            stack[top] = rr * cols + cc
                            top += 1
    return n


@njit
def split_profile(
    profile: F64, c0: int, c1: int, person_width: float, valley_ratio: float, wide_factor: float, ends: I64
) -> int:
    """Cut the column profile of one blob (columns c0..c1) into people; writes each part's last column.

    A valley deeper than `valley_ratio` × the lower of two peaks at least half a person apart
    separates two people; a part still wider than `wide_factor` people is cut into equal widths.
    """
    peaks = np.empty(c1 - c0 + 1, dtype=np.int64)
    n_peaks = 0
    for c in range(c0, c1 + 1):
        left = profile[c - 1] if c > c0 else 0.0
        right = profile[c + 1] if c < c1 else 0.0
        if profile[c] > left and profile[c] >= right:
            peaks[n_peaks] = c
            n_peaks += 1
    cuts = np.empty(c1 - c0 + 2, dtype=np.int64)
    n_cuts = 0
    if n_peaks > 0:
        kept = peaks[0]
        for i in range(1, n_peaks):
            q = peaks[i]
            valley = kept + 1
            for c in range(kept + 1, q):
                if profile[c] < profile[valley]:
                    valley = c
            lower = min(profile[kept], profile[q])
            if q - kept >= 0.5 * person_width and profile[valley] <= valley_ratio * lower:
                cuts[n_cuts] = valley
                n_cuts += 1
                kept = q
            elif profile[q] > profile[kept]:
                kept = q
    cuts[n_cuts] = c1
    n_cuts += 1
    n_parts = 0
    start = c0
    for i in range(n_cuts):
        end = cuts[i]
        width = end - start + 1
        pieces = 1
        if width > wide_factor * person_width:
            pieces = max(1, int(width / person_width + 0.5))
        for p in range(1, pieces + 1):
            ends[n_parts] = start + (width * p) // pieces - 1
            n_parts += 1
        start = end + 1
    return n_parts


@njit
def measure_blobs(
    labels: I32, n_labels: int, excess: F64, params: F64, blob_x: F64, blob_y: F64, blob_mass: F64
) -> int:
    """Centroids (heat-weighted) of the people in each labelled blob, after splitting; returns how many."""
    rows, cols = labels.shape
    size = np.zeros(n_labels + 1, dtype=np.int64)
    cmin = np.full(n_labels + 1, cols, dtype=np.int64)
    cmax = np.full(n_labels + 1, -1, dtype=np.int64)
    rmin = np.full(n_labels + 1, rows, dtype=np.int64)
    rmax = np.full(n_labels + 1, -1, dtype=np.int64)
    for r in range(rows):
        for c in range(cols):
            lab = labels[r, c]
            if lab > 0:
                size[lab] += 1
                cmin[lab] = min(cmin[lab], c)
                cmax[lab] = max(cmax[lab], c)
                rmin[lab] = min(rmin[lab], r)
                rmax[lab] = max(rmax[lab], r)
    profile = np.zeros(cols, dtype=np.float64)
    ends = np.empty(cols + 1, dtype=np.int64)
    n_blobs = 0
    for lab in range(1, n_labels + 1):
        if size[lab] < params[P_MIN_PIXELS]:
            continue
        profile[:] = 0.0
        for r in range(rmin[lab], rmax[lab] + 1):
            for c in range(cmin[lab], cmax[lab] + 1):
                if labels[r, c] == lab:
                    profile[c] += excess[r, c]
        n_parts = split_profile(
            profile,
            cmin[lab],
            cmax[lab],
            params[P_PERSON_WIDTH],
            params[P_VALLEY_RATIO],
            params[P_WIDE_FACTOR],
            ends,
        )
        start = cmin[lab]
        for p in range(n_parts):
            end = ends[p]
            mass = sx = sy = 0.0
            for r in range(rmin[lab], rmax[lab] + 1):
                for c in range(start, end + 1):
                    if labels[r, c] == lab:
                        w = excess[r, c]
                        mass += w
                        sx += w * c
                        sy += w * r
            start = end + 1
            if mass <= 0.0 or n_blobs >= blob_x.shape[0]:
                continue
            blob_x[n_blobs] = sx / mass
            blob_y[n_blobs] = sy / mass
            blob_mass[n_blobs] = mass
            n_blobs += 1
    return n_blobs
