"""The thermal people counter the driver runs: the numba pipeline's steps in NumPy and plain Python, no JIT.

The resident agent never loads numba (docs/performance.md, "What runs where"), and a thermal array streams
all day, so its counter cannot live in a kernel worker without keeping numba's 150 MB for as long as the
array is plugged in. A frame is 24x32 pixels and arrives at most 8 (16) times a second; what costs here is
per-call overhead, so the steps work on foreground *runs* (a few dozen per frame, none on an empty floor)
rather than on pixels. Read `agent.kernels.thermal` for the algorithm.

Bit for bit the numba kernels: the same float64 operations in the same order. Every sum the kernels
accumulate in a loop is accumulated here in the same order with `cumsum` (sequential, where `sum` is
pairwise), squares are products, and blobs, tracks and ties come in the same order, so the background,
the tracks and every count agree exactly (tests/agent/kernels/test_thermal_numpy.py compares the state
after every frame).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from agent.kernels.thermal_params import (
    F64,
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

Mask = npt.NDArray[np.bool_]
Labels = npt.NDArray[np.int64]


def foreground_runs(mask: Mask) -> tuple[list[int], list[int], list[int]]:
    """(row, first column, column after the last) of every horizontal run of foreground, in raster order."""
    rows, cols = mask.shape
    edges = np.zeros((rows, cols + 2), dtype=np.int8)
    edges[:, 1:-1] = mask
    steps = np.diff(edges, axis=1)
    run_rows, starts = np.nonzero(steps == 1)
    _, stops = np.nonzero(steps == -1)  # row-major like the starts, so the k-th stop ends the k-th run
    return run_rows.tolist(), starts.tolist(), stops.tolist()


def label_runs(mask: Mask) -> tuple[Labels, int, list[tuple[int, int, int, int]]]:
    """8-connected labels 1..n in raster order of each component's first pixel, as the numba kernel numbers them.

    Also returns the runs as (label, row, start, stop), for the blob measurements.
    """
    run_rows, starts, stops = foreground_runs(mask)
    n_runs = len(run_rows)
    labels: Labels = np.zeros(mask.shape, dtype=np.int64)
    if n_runs == 0:
        return labels, 0, []
    parent = list(range(n_runs))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    in_row: dict[int, tuple[int, int]] = {}  # row -> [first, end) of its runs
    for i, r in enumerate(run_rows):
        first, _ = in_row.get(r, (i, i))
        in_row[r] = (first, i + 1)
    for i in range(n_runs):
        for j in range(*in_row.get(run_rows[i] - 1, (0, 0))):
            # Diagonal neighbours touch: runs [s, e) and [s', e') meet when s <= e' and s' <= e.
            if starts[j] <= stops[i] and starts[i] <= stops[j]:
                a, b = root(i), root(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)  # the earliest run (first pixel in raster order) is the root
    number: dict[int, int] = {}
    runs = []
    for i in range(n_runs):
        lab = number.setdefault(root(i), len(number) + 1)
        labels[run_rows[i], starts[i] : stops[i]] = lab
        runs.append((lab, run_rows[i], starts[i], stops[i]))
    return labels, len(number), runs


def split_columns(
    profile: list[float], c0: int, c1: int, person_width: float, valley_ratio: float, wide_factor: float
) -> list[int]:
    """Last column of each person in one blob's column profile (columns c0..c1), as `split_profile` cuts it."""
    peaks = []
    for c in range(c0, c1 + 1):
        left = profile[c - 1] if c > c0 else 0.0
        right = profile[c + 1] if c < c1 else 0.0
        if profile[c] > left and profile[c] >= right:
            peaks.append(c)
    cuts = []
    if peaks:
        kept = peaks[0]
        for q in peaks[1:]:
            valley = kept + 1
            for c in range(kept + 1, q):
                if profile[c] < profile[valley]:
                    valley = c
            lower = min(profile[kept], profile[q])
            if q - kept >= 0.5 * person_width and profile[valley] <= valley_ratio * lower:
                cuts.append(valley)
                kept = q
            elif profile[q] > profile[kept]:
                kept = q
    cuts.append(c1)
    ends: list[int] = []
    start = c0
    for end in cuts:
        width = end - start + 1
        pieces = max(1, int(width / person_width + 0.5)) if width > wide_factor * person_width else 1
        ends.extend(start + (width * p) // pieces - 1 for p in range(1, pieces + 1))
        start = end + 1
    return ends


def _in_order(values: F64) -> float:
    """The sum of `values` added one after another from 0.0, as a loop adds them (not numpy's pairwise sum)."""
    return float(np.cumsum(values)[-1]) if values.size else 0.0


def measure_people(
    labels: Labels, runs: list[tuple[int, int, int, int]], n_labels: int, excess: F64, params: F64
) -> tuple[list[float], list[float]]:
    """Heat-weighted centroids of the people in each blob, after splitting (`measure_blobs`)."""
    cols = labels.shape[1]
    size, rmin, rmax = [0] * (n_labels + 1), [1 << 30] * (n_labels + 1), [-1] * (n_labels + 1)
    cmin, cmax = [cols] * (n_labels + 1), [-1] * (n_labels + 1)
    for lab, r, s, e in runs:
        size[lab] += e - s
        rmin[lab], rmax[lab] = min(rmin[lab], r), max(rmax[lab], r)
        cmin[lab], cmax[lab] = min(cmin[lab], s), max(cmax[lab], e - 1)
    xs: list[float] = []
    ys: list[float] = []
    for lab in range(1, n_labels + 1):
        if size[lab] < params[P_MIN_PIXELS]:
            continue
        r0, r1, c0, c1 = rmin[lab], rmax[lab] + 1, cmin[lab], cmax[lab] + 1
        mine = labels[r0:r1, c0:c1] == lab
        heat = np.where(mine, excess[r0:r1, c0:c1], 0.0)  # adding 0.0 leaves a sum unchanged
        profile = [0.0] * cols
        profile[c0:c1] = np.cumsum(heat, axis=0)[-1].tolist()  # each column summed down the rows, as the loop
        ends = split_columns(profile, c0, c1 - 1, params[P_PERSON_WIDTH], params[P_VALLEY_RATIO], params[P_WIDE_FACTOR])
        start = c0
        for end in ends:
            part = mine[:, start - c0 : end - c0 + 1]
            rr, cc = np.nonzero(part)  # raster order, the kernel's loop order
            w = excess[r0:r1, start : end + 1][part]
            mass = _in_order(w)
            sx, sy = _in_order(w * (cc + start)), _in_order(w * (rr + r0))
            start = end + 1
            if mass <= 0.0 or len(xs) >= MAX_BLOBS:
                continue
            xs.append(sx / mass)
            ys.append(sy / mass)
    return xs, ys


def _side(y: float, line_a: float, line_b: float) -> int:
    return -1 if y < line_a else 1 if y > line_b else 0


def follow_people(tracks: F64, bx: list[float], by: list[float], params: F64) -> tuple[int, int]:
    """Match blobs to tracks, coast or retire the rest, count line crossings (`track_blobs`): (down, up)."""
    max_jump, line_a, line_b = float(params[P_MAX_JUMP]), float(params[P_LINE_A]), float(params[P_LINE_B])
    t_rows: list[list[float]] = tracks.tolist()  # Python floats: the same doubles, without numpy's per-item cost
    n_tracks, n_blobs = len(t_rows), len(bx)
    px = [t[T_X] + t[T_VX] for t in t_rows]
    py = [t[T_Y] + t[T_VY] for t in t_rows]
    for t in t_rows:
        t[T_MATCHED] = 0.0
    down = up = 0
    used = [False] * n_blobs
    while True:
        best, bt, bb = max_jump * max_jump, -1, -1
        for i in range(n_tracks):
            t = t_rows[i]
            if t[T_ACTIVE] == 0.0 or t[T_MATCHED] != 0.0:
                continue
            for b in range(n_blobs):
                if used[b]:
                    continue
                dx, dy = bx[b] - px[i], by[b] - py[i]
                d = dx * dx + dy * dy
                if d <= best:
                    best, bt, bb = d, i, b
        if bt < 0:
            break
        used[bb] = True
        t = t_rows[bt]
        t[T_MATCHED] = 1.0
        t[T_VX] = 0.5 * t[T_VX] + 0.5 * (bx[bb] - t[T_X])
        t[T_VY] = 0.5 * t[T_VY] + 0.5 * (by[bb] - t[T_Y])
        t[T_X], t[T_Y] = bx[bb], by[bb]
        t[T_MISSING] = 0.0
        t[T_AGE] += 1.0
        now = _side(t[T_Y], line_a, line_b)
        if now != 0:
            if t[T_SIDE] == 0.0:
                t[T_SIDE] = float(now)  # born between the lines: counts once it has walked across
            elif t[T_SIDE] != now:
                down, up = (down + 1, up) if now > 0 else (down, up + 1)
                t[T_SIDE] = float(now)
    for i in range(n_tracks):
        t = t_rows[i]
        if t[T_ACTIVE] == 0.0 or t[T_MATCHED] != 0.0:
            continue
        t[T_MISSING] += 1.0
        if t[T_MISSING] > params[P_MAX_MISSING]:
            t[T_ACTIVE] = 0.0
            continue
        t[T_X], t[T_Y] = px[i], py[i]  # coasting counts nothing
    for b in range(n_blobs):
        if used[b]:
            continue
        slot = next((i for i in range(n_tracks) if t_rows[i][T_ACTIVE] == 0.0), -1)
        if slot < 0:
            break  # more people than track slots: the rest wait for a free slot
        side = _side(by[b], line_a, line_b)
        if side == 0:
            reach = 1.5 * float(params[P_PERSON_WIDTH])  # "next to" is a person's size, not the jump limit
            near = reach * reach
            for t in t_rows:
                if t[T_ACTIVE] != 0.0 and t[T_MATCHED] != 0.0 and t[T_SIDE] != 0.0:
                    dx, dy = bx[b] - t[T_X], by[b] - t[T_Y]
                    d = dx * dx + dy * dy
                    if d < near:
                        near, side = d, int(t[T_SIDE])
        row = t_rows[slot]
        row[T_ACTIVE], row[T_X], row[T_Y], row[T_VX], row[T_VY] = 1.0, bx[b], by[b], 0.0, 0.0
        row[T_SIDE], row[T_MISSING], row[T_AGE], row[T_BORN_Y], row[T_MATCHED] = float(side), 0.0, 1.0, by[b], 1.0
    tracks[:] = t_rows
    return down, up


def grown(mask: Mask) -> Mask:
    """`mask` and its 8 neighbours (a 3x3 box is a row pass then a column pass)."""
    rows = mask.copy()
    rows[1:] |= mask[:-1]
    rows[:-1] |= mask[1:]
    out = rows.copy()
    out[:, 1:] |= rows[:, :-1]
    out[:, :-1] |= rows[:, 1:]
    return out


class ThermalCounterNumpy:
    """Counts people crossing the rows of a thermal frame without numba; `feed(frame)` returns (down, up)."""

    def __init__(self, rows: int = 24, cols: int = 32, params: CountingParams | None = None, *, rate_hz: float) -> None:
        self.rows, self.cols, self.rate_hz = rows, cols, rate_hz
        self.params = params or CountingParams()
        self._params = self.params.as_array(rows, rate_hz)
        self.bg = np.zeros((rows, cols))
        self.var = np.zeros((rows, cols))
        self.tracks = np.zeros((MAX_TRACKS, N_TRACK_COLS))
        self.n_seen = 0

    def feed(self, raw: npt.NDArray[np.int16]) -> tuple[int, int]:
        """Process one (rows, cols) int16 frame of °C×100; returns (down, up) crossings it completed."""
        p = self._params
        frame: F64 = raw.astype(np.float64) * 0.01
        if self.n_seen == 0:
            self.bg[:] = frame
            self.var[:] = INITIAL_SIGMA * INITIAL_SIGMA
            self.n_seen = 1
            return 0, 0
        excess = frame - self.bg
        mask = excess > np.maximum(p[P_K_SIGMA] * np.sqrt(self.var), p[P_MIN_DELTA])
        crossings = (0, 0)
        labels, n_labels, runs = label_runs(mask)
        xs, ys = measure_people(labels, runs, n_labels, excess, p) if n_labels else ([], [])
        if self.n_seen >= p[P_WARMUP]:
            crossings = follow_people(self.tracks, xs, ys, p)
        rate = max(p[P_ALPHA], 1.0 / (self.n_seen + 1.0))  # a running mean while warming up, then slow
        if n_labels:
            learn = ~grown(mask)  # frozen on and next to people, so one standing still does not fade
            self.bg[learn] += rate * excess[learn]
            self.var[learn] += rate * (excess[learn] * excess[learn] - self.var[learn])
        else:
            self.bg += rate * excess
            self.var += rate * (excess * excess - self.var)
        self.n_seen += 1
        return crossings

    def set_rate(self, rate_hz: float) -> None:
        """Count frames arriving at `rate_hz` from now on (the module runs slower than asked); state is kept."""
        self._params = self.params.as_array(self.rows, rate_hz)
        self.rate_hz = rate_hz

    def reset_tracks(self) -> None:
        """Forget everyone being followed (after a gap in the frames); the background is kept."""
        self.tracks[:] = 0.0
