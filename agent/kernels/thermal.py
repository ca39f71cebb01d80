"""People counting on a low-resolution thermal array: background, threshold, blobs, tracks, line crossing.

Frames are (rows, cols) arrays of °C×100; people move along the rows (axis 0). Every kernel is a
pure function on preallocated arrays; `ThermalCounter` owns the state and runs one frame at a time.

1. `update_background`: per-pixel mean and noise variance, learnt slowly (rate `alpha`) and frozen
   on and next to foreground pixels, so a person standing still does not fade into the floor.
2. `threshold_frame`: foreground where frame − background > max(k·sigma, min_delta).
3. `label_blobs`: 8-connected components; `measure_blobs` drops small ones and splits a blob whose
   column profile has two peaks with a valley between them (two people side by side), or that is
   much wider than one person; each part becomes a blob at its heat-weighted centroid.
4. `track_blobs`: greedy nearest-neighbour matching (globally closest pair first) of predicted
   track positions to blobs within `max_jump`; unmatched tracks coast on their velocity for a few
   frames (counting nothing while unseen); a new blob born between the lines next to a matched
   track inherits that track's side (a merged pair splitting apart).
5. Crossing with hysteresis: a track's side is "before" (row < line_a) or "after" (row > line_b);
   between the lines it keeps its side. A change of side is one crossing: before→after is "down"
   (towards higher rows), after→before is "up". Dwelling between the lines counts nothing.

The kernels read per-frame limits (jump, coasting frames, warm-up frames, background rate) from the
parameter vector; `CountingParams` declares them per second and derives them for one frame rate, so
a runner is followed at 4 frames a second and strangers are not joined at 16.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from agent.kernels.numba_shim import njit
from agent.kernels.thermal_blobs import (  # noqa: F401 - re-exported: the kernels' one public module
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
    label_blobs,
    measure_blobs,
    split_profile,
    threshold_frame,
    update_background,
)
from agent.kernels.thermal_params import CountingParams


@njit
def side_of(y: float, line_a: float, line_b: float) -> int:
    """-1 before line a, +1 after line b, 0 between the lines (hysteresis band)."""
    if y < line_a:
        return -1
    if y > line_b:
        return 1
    return 0


@njit
def cross_lines(tracks: F64, slot: int, line_a: float, line_b: float, crossings: I64) -> None:
    """Update one track's side from an observed position; a change of side adds a crossing (0: down, 1: up)."""
    y = tracks[slot, T_Y]
    now = side_of(y, line_a, line_b)
    if now == 0:
        return
    before = tracks[slot, T_SIDE]
    if before == 0.0:
        # Born between the lines with no tracked neighbour: its first side is where it came from,
        # so it counts only once it has walked across to the other side (like a lingerer turning back).
        tracks[slot, T_SIDE] = now
    elif before != now:
        crossings[0 if now > 0 else 1] += 1
        tracks[slot, T_SIDE] = now


@njit
def track_blobs(tracks: F64, blob_x: F64, blob_y: F64, n_blobs: int, params: F64, crossings: I64) -> None:
    """Match blobs to tracks (closest pair first), coast or retire the rest, count line crossings."""
    max_jump = params[P_MAX_JUMP]
    line_a, line_b = params[P_LINE_A], params[P_LINE_B]
    n_tracks = tracks.shape[0]
    px = np.empty(n_tracks)
    py = np.empty(n_tracks)
    for t in range(n_tracks):
        px[t] = tracks[t, T_X] + tracks[t, T_VX]
        py[t] = tracks[t, T_Y] + tracks[t, T_VY]
        tracks[t, T_MATCHED] = 0.0
    blob_used = np.zeros(max(n_blobs, 1), dtype=np.bool_)
    while True:
        best, bt, bb = max_jump * max_jump, -1, -1
        for t in range(n_tracks):
            if tracks[t, T_ACTIVE] == 0.0 or tracks[t, T_MATCHED] != 0.0:
                continue
            for b in range(n_blobs):
                if blob_used[b]:
                    continue
                d = (blob_x[b] - px[t]) ** 2 + (blob_y[b] - py[t]) ** 2
                if d <= best:
                    best, bt, bb = d, t, b
        if bt < 0:
            break
        blob_used[bb] = True
        tracks[bt, T_MATCHED] = 1.0
        tracks[bt, T_VX] = 0.5 * tracks[bt, T_VX] + 0.5 * (blob_x[bb] - tracks[bt, T_X])
        tracks[bt, T_VY] = 0.5 * tracks[bt, T_VY] + 0.5 * (blob_y[bb] - tracks[bt, T_Y])
        tracks[bt, T_X] = blob_x[bb]
        tracks[bt, T_Y] = blob_y[bb]
        tracks[bt, T_MISSING] = 0.0
        tracks[bt, T_AGE] += 1.0
        cross_lines(tracks, bt, line_a, line_b, crossings)
    for t in range(n_tracks):
        if tracks[t, T_ACTIVE] == 0.0 or tracks[t, T_MATCHED] != 0.0:
            continue
        tracks[t, T_MISSING] += 1.0
        if tracks[t, T_MISSING] > params[P_MAX_MISSING]:
            tracks[t, T_ACTIVE] = 0.0
            continue
        # Coast: a person hidden in a merged blob keeps walking. A coasting track counts no
        # crossing (no evidence); it is picked up again when the blobs part.
        tracks[t, T_X] = px[t]
        tracks[t, T_Y] = py[t]
    for b in range(n_blobs):
        if blob_used[b]:
            continue
        slot = -1
        for t in range(n_tracks):
            if tracks[t, T_ACTIVE] == 0.0:
                slot = t
                break
        if slot < 0:
            return  # more people than track slots: the rest wait for a free slot
        side = side_of(blob_y[b], line_a, line_b)
        if side == 0:
            # A blob born between the lines next to a tracked person split off from it. "Next to" is
            # a person's size, not the jump limit: at low frame rates that limit spans the whole view.
            near = (1.5 * params[P_PERSON_WIDTH]) ** 2
            for t in range(n_tracks):
                if tracks[t, T_ACTIVE] != 0.0 and tracks[t, T_MATCHED] != 0.0 and tracks[t, T_SIDE] != 0.0:
                    d = (blob_x[b] - tracks[t, T_X]) ** 2 + (blob_y[b] - tracks[t, T_Y]) ** 2
                    if d < near:
                        near, side = d, int(tracks[t, T_SIDE])
        tracks[slot, T_ACTIVE] = 1.0
        tracks[slot, T_X] = blob_x[b]
        tracks[slot, T_Y] = blob_y[b]
        tracks[slot, T_VX] = 0.0
        tracks[slot, T_VY] = 0.0
        tracks[slot, T_SIDE] = float(side)
        tracks[slot, T_MISSING] = 0.0
        tracks[slot, T_AGE] = 1.0
        tracks[slot, T_BORN_Y] = blob_y[b]
        tracks[slot, T_MATCHED] = 1.0


@njit
def count_frame(
    raw: npt.NDArray[np.int16],
    params: F64,
    bg: F64,
    var: F64,
    frame: F64,
    excess: F64,
    mask: U8,
    labels: I32,
    stack: I32,
    blob_x: F64,
    blob_y: F64,
    blob_mass: F64,
    tracks: F64,
    n_seen: I64,
    crossings: I64,
) -> None:
    """Run the whole pipeline on one frame of °C×100; adds this frame's (down, up) to `crossings`."""
    rows, cols = raw.shape
    for r in range(rows):
        for c in range(cols):
            frame[r, c] = raw[r, c] * 0.01
    if n_seen[0] == 0:
        update_background(frame, bg, var, mask, params[P_ALPHA], 0)
        n_seen[0] = 1
        return
    threshold_frame(frame, bg, var, params[P_K_SIGMA], params[P_MIN_DELTA], excess, mask)
    n_labels = label_blobs(mask, labels, stack)
    n_blobs = measure_blobs(labels, n_labels, excess, params, blob_x, blob_y, blob_mass)
    if n_seen[0] >= params[P_WARMUP]:
        track_blobs(tracks, blob_x, blob_y, n_blobs, params, crossings)
    update_background(frame, bg, var, mask, params[P_ALPHA], n_seen[0])
    n_seen[0] += 1


class ThermalCounter:
    """Counts people crossing the rows of a thermal frame; `feed(frame)` returns (down, up) for it.

    `rate_hz` is the rate frames arrive at; it has no default because limits derived for the wrong
    rate miss fast walkers (too tight) or join strangers (too loose) without a sign.
    """

    def __init__(self, rows: int = 24, cols: int = 32, params: CountingParams | None = None, *, rate_hz: float) -> None:
        self.rows, self.cols, self.rate_hz = rows, cols, rate_hz
        self.params = params or CountingParams()
        self._params = self.params.as_array(rows, rate_hz)
        self.bg = np.zeros((rows, cols))
        self.var = np.zeros((rows, cols))
        self._frame = np.zeros((rows, cols))
        self._excess = np.zeros((rows, cols))
        self._mask = np.zeros((rows, cols), dtype=np.uint8)
        self._labels = np.zeros((rows, cols), dtype=np.int32)
        self._stack = np.zeros(rows * cols, dtype=np.int32)
        self._blob_x = np.zeros(MAX_BLOBS)
        self._blob_y = np.zeros(MAX_BLOBS)
        self._blob_mass = np.zeros(MAX_BLOBS)
        self.tracks = np.zeros((MAX_TRACKS, N_TRACK_COLS))
        self._n_seen = np.zeros(1, dtype=np.int64)
        self._crossings = np.zeros(2, dtype=np.int64)

    def feed(self, frame: npt.NDArray[np.int16]) -> tuple[int, int]:
        """Process one (rows, cols) int16 frame of °C×100; returns (down, up) crossings it completed."""
        self._crossings[:] = 0
        count_frame(
            frame,
            self._params,
            self.bg,
            self.var,
            self._frame,
            self._excess,
            self._mask,
            self._labels,
            self._stack,
            self._blob_x,
            self._blob_y,
            self._blob_mass,
            self.tracks,
            self._n_seen,
            self._crossings,
        )
        return int(self._crossings[0]), int(self._crossings[1])

    def set_rate(self, rate_hz: float) -> None:
        """Count frames arriving at `rate_hz` from now on (the module runs slower than asked); state is kept."""
        self._params = self.params.as_array(self.rows, rate_hz)
        self.rate_hz = rate_hz

    def reset_tracks(self) -> None:
        """Forget everyone being followed (after a gap in the frames); the background is kept."""
        self.tracks[:] = 0.0
