"""The thermal people-counting pipeline in plain vectorised NumPy: the benchmark's baseline.

Same steps and parameters as `agent.kernels.thermal` (read its docstring), written the way one
would without numba: whole-array operations, connected components by iterated min-label
propagation over the 8 neighbours, blob statistics with `np.bincount`, and only the small
per-blob and per-track decisions in Python loops. It gives the same counts as the numba kernels.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from agent.kernels.thermal import (
    INITIAL_SIGMA,
    MAX_BLOBS,
    MAX_TRACKS,
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
    CountingParams,
)

F64 = npt.NDArray[np.float64]
NEIGHBOURS = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)]


def _shifted(a: npt.NDArray[np.int64], dr: int, dc: int, fill: int) -> npt.NDArray[np.int64]:
    """`a` moved by (dr, dc), with `fill` where nothing moved in."""
    out = np.full_like(a, fill)
    rows, cols = a.shape
    out[max(dr, 0) : rows + min(dr, 0), max(dc, 0) : cols + min(dc, 0)] = a[
        max(-dr, 0) : rows + min(-dr, 0), max(-dc, 0) : cols + min(-dc, 0)
    ]
    return out


def dilate_mask(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """The mask grown by one pixel in all 8 directions."""
    m = mask.astype(np.int64)
    grown = m.copy()
    for dr, dc in NEIGHBOURS:
        grown |= _shifted(m, dr, dc, 0)
    return grown.astype(bool)


def label_blobs_numpy(mask: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.int64], int]:
    """8-connected labels 1..n in raster order of each component's first pixel."""
    rows, cols = mask.shape
    big = rows * cols + 1
    labels = np.where(mask, np.arange(1, big).reshape(rows, cols), big)
    while True:
        smallest = labels.copy()
        for dr, dc in NEIGHBOURS:
            np.minimum(smallest, _shifted(labels, dr, dc, big), out=smallest)
        smallest = np.where(mask, smallest, big)
        if np.array_equal(smallest, labels):
            break
        labels = smallest
    roots = np.unique(labels[mask])
    dense = np.zeros(big + 1, dtype=np.int64)
    dense[roots] = np.arange(1, roots.size + 1)
    return np.where(mask, dense[labels], 0), int(roots.size)


def split_profile_numpy(
    profile: F64, c0: int, c1: int, person_width: float, valley_ratio: float, wide_factor: float
) -> list[int]:
    """Last column of each person-sized part of one blob's column profile (see the numba kernel)."""
    seg = profile[c0 : c1 + 1]
    padded = np.concatenate(([0.0], seg, [0.0]))
    peaks = (np.flatnonzero((padded[1:-1] > padded[:-2]) & (padded[1:-1] >= padded[2:])) + c0).tolist()
    cuts: list[int] = []
    if peaks:
        kept = peaks[0]
        for q in peaks[1:]:
            valley = kept + 1 + int(np.argmin(profile[kept + 1 : q])) if q > kept + 1 else kept + 1
            if q - kept >= 0.5 * person_width and profile[valley] <= valley_ratio * min(profile[kept], profile[q]):
                cuts.append(valley)
                kept = q
            elif profile[q] > profile[kept]:
                kept = q
    cuts.append(c1)
    ends, start = [], c0
    for end in cuts:
        width = end - start + 1
        pieces = max(1, int(width / person_width + 0.5)) if width > wide_factor * person_width else 1
        ends += [start + (width * p) // pieces - 1 for p in range(1, pieces + 1)]
        start = end + 1
    return ends


def measure_blobs_numpy(labels: npt.NDArray[np.int64], n: int, excess: F64, params: F64) -> tuple[F64, F64]:
    """Heat-weighted centroids of the people in each blob, after splitting."""
    rows, cols = labels.shape
    if n == 0:
        return np.zeros(0), np.zeros(0)
    flat = labels.ravel()
    r_idx, c_idx = np.divmod(np.arange(rows * cols), cols)
    size = np.bincount(flat, minlength=n + 1)
    on = flat > 0
    profile = np.zeros((n + 1, cols))
    np.add.at(profile, (flat[on], c_idx[on]), excess.ravel()[on])
    cmin = np.full(n + 1, cols)
    cmax = np.full(n + 1, -1)
    np.minimum.at(cmin, flat[on], c_idx[on])
    np.maximum.at(cmax, flat[on], c_idx[on])
    weight = excess.ravel()
    xs: list[float] = []
    ys: list[float] = []
    for lab in range(1, n + 1):
        if size[lab] < params[P_MIN_PIXELS]:
            continue
        ends = split_profile_numpy(
            profile[lab], int(cmin[lab]), int(cmax[lab]),
            params[P_PERSON_WIDTH], params[P_VALLEY_RATIO], params[P_WIDE_FACTOR],
        )  # fmt: skip
        start = int(cmin[lab])
        for end in ends:
            part = (flat == lab) & (c_idx >= start) & (c_idx <= end)
            start = end + 1
            mass = weight[part].sum()
            if mass <= 0 or len(xs) >= MAX_BLOBS:
                continue
            xs.append(float((weight[part] * c_idx[part]).sum() / mass))
            ys.append(float((weight[part] * r_idx[part]).sum() / mass))
    return np.asarray(xs), np.asarray(ys)


def _side(y: F64, line_a: float, line_b: float) -> npt.NDArray[np.int64]:
    return np.where(y < line_a, -1, np.where(y > line_b, 1, 0))


def _cross(tracks: F64, which: npt.NDArray[np.bool_], line_a: float, line_b: float, crossings: list[int]) -> None:
    """Side changes of the tracks selected by `which` (index 0: down, 1: up)."""
    now = _side(tracks[:, T_Y], line_a, line_b)
    before = tracks[:, T_SIDE]
    decided = which & (now != 0)
    counted = decided & (before != 0) & (before != now)
    crossings[0] += int((counted & (now > 0)).sum())
    crossings[1] += int((counted & (now < 0)).sum())
    tracks[decided, T_SIDE] = now[decided]


def track_blobs_numpy(tracks: F64, bx: F64, by: F64, params: F64, crossings: list[int]) -> None:
    """Nearest-neighbour tracking and line crossing, as in the numba kernel."""
    line_a, line_b, max_jump = params[P_LINE_A], params[P_LINE_B], params[P_MAX_JUMP]
    px = tracks[:, T_X] + tracks[:, T_VX]
    py = tracks[:, T_Y] + tracks[:, T_VY]
    tracks[:, T_MATCHED] = 0.0
    active = tracks[:, T_ACTIVE] != 0
    dist = (bx[None, :] - px[:, None]) ** 2 + (by[None, :] - py[:, None]) ** 2
    dist[~active, :] = np.inf
    dist[dist > max_jump * max_jump] = np.inf
    blob_used = np.zeros(bx.size, dtype=bool)
    # Closest pair first; on equal distances the lowest (track, blob) wins, as in the numba loop's last "<=".
    while dist.size and np.isfinite(dist).any():
        flat = np.flatnonzero(dist.ravel() == dist.min())[-1]
        t, b = divmod(int(flat), bx.size)
        dist[t, :] = np.inf
        dist[:, b] = np.inf
        blob_used[b] = True
        tracks[t, T_MATCHED] = 1.0
        tracks[t, T_VX] = 0.5 * tracks[t, T_VX] + 0.5 * (bx[b] - tracks[t, T_X])
        tracks[t, T_VY] = 0.5 * tracks[t, T_VY] + 0.5 * (by[b] - tracks[t, T_Y])
        tracks[t, T_X], tracks[t, T_Y] = bx[b], by[b]
        tracks[t, T_MISSING] = 0.0
        tracks[t, T_AGE] += 1.0
        _cross(tracks, np.arange(tracks.shape[0]) == t, line_a, line_b, crossings)
    coasting = active & (tracks[:, T_MATCHED] == 0)
    tracks[coasting, T_MISSING] += 1.0
    retired = coasting & (tracks[:, T_MISSING] > params[P_MAX_MISSING])
    tracks[retired, T_ACTIVE] = 0.0
    coasting &= ~retired
    tracks[coasting, T_X] = px[coasting]
    tracks[coasting, T_Y] = py[coasting]
    for blob in np.flatnonzero(~blob_used):
        b = int(blob)
        free = np.flatnonzero(tracks[:, T_ACTIVE] == 0)
        if free.size == 0:
            return
        slot = int(free[0])
        side = int(_side(by[b : b + 1], line_a, line_b)[0])
        if side == 0:
            parents = (tracks[:, T_ACTIVE] != 0) & (tracks[:, T_MATCHED] != 0) & (tracks[:, T_SIDE] != 0)
            d = (bx[b] - tracks[:, T_X]) ** 2 + (by[b] - tracks[:, T_Y]) ** 2
            d[~parents] = np.inf
            if parents.any() and d.min() < (1.5 * params[P_PERSON_WIDTH]) ** 2:
                side = int(tracks[int(np.argmin(d)), T_SIDE])
        tracks[slot] = 0.0
        tracks[slot, [T_ACTIVE, T_X, T_Y, T_SIDE, T_AGE, T_BORN_Y, T_MATCHED]] = [
            1.0, bx[b], by[b], float(side), 1.0, by[b], 1.0,
        ]  # fmt: skip


class ThermalCounterNumpy:
    """The NumPy twin of `ThermalCounter`: `feed(frame)` returns (down, up) for one frame."""

    def __init__(self, rows: int = 24, cols: int = 32, params: CountingParams | None = None, *, rate_hz: float) -> None:
        self.params = params or CountingParams()
        self._params = self.params.as_array(rows, rate_hz)
        self.bg = np.zeros((rows, cols))
        self.var = np.zeros((rows, cols))
        self.tracks = np.zeros((MAX_TRACKS, N_TRACK_COLS))
        self.n_seen = 0

    def _learn(self, frame: F64, mask: npt.NDArray[np.bool_]) -> None:
        if self.n_seen == 0:
            self.bg[:] = frame
            self.var[:] = INITIAL_SIGMA * INITIAL_SIGMA
            return
        rate = max(self._params[P_ALPHA], 1.0 / (self.n_seen + 1.0))
        learn = ~dilate_mask(mask)
        d = frame - self.bg
        self.bg[learn] += rate * d[learn]
        self.var[learn] += rate * (d[learn] ** 2 - self.var[learn])

    def feed(self, raw: npt.NDArray[np.int16]) -> tuple[int, int]:
        """Process one (rows, cols) int16 frame of °C×100; returns (down, up) crossings it completed."""
        p = self._params
        frame: F64 = raw.astype(np.float64) * 0.01
        if self.n_seen == 0:
            self._learn(frame, np.zeros(frame.shape, dtype=bool))
            self.n_seen = 1
            return 0, 0
        excess = frame - self.bg
        mask = excess > np.maximum(p[P_K_SIGMA] * np.sqrt(self.var), p[P_MIN_DELTA])
        labels, n = label_blobs_numpy(mask)
        bx, by = measure_blobs_numpy(labels, n, excess, p)
        crossings = [0, 0]
        if self.n_seen >= p[P_WARMUP]:
            track_blobs_numpy(self.tracks, bx, by, p, crossings)
        self._learn(frame, mask)
        self.n_seen += 1
        return crossings[0], crossings[1]
