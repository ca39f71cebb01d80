"""The thermal counter's parameters and table layouts, without numba: both counters read them.

`agent.kernels.thermal` (numba, the benchmark's fast reference) and `agent.kernels.thermal_numpy` (what
the driver runs in the resident agent, which never loads the JIT) share every constant and
`CountingParams`, so the two can only differ in how they compute, never in what they are told.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]

# Indices into the float64 parameter vector (one array keeps the compiled signature fixed).
P_ALPHA, P_K_SIGMA, P_MIN_DELTA, P_MIN_PIXELS, P_PERSON_WIDTH, P_VALLEY_RATIO = 0, 1, 2, 3, 4, 5
P_WIDE_FACTOR, P_MAX_JUMP, P_MAX_MISSING, P_LINE_A, P_LINE_B, P_WARMUP = 6, 7, 8, 9, 10, 11
N_PARAMS = 12

# Columns of the track table (one row per track slot).
# T_BORN_Y (the row a track started at) is kept for diagnostics; no decision uses it.
T_ACTIVE, T_X, T_Y, T_VX, T_VY, T_SIDE, T_MISSING, T_AGE, T_BORN_Y, T_MATCHED = range(10)
N_TRACK_COLS = 10
MAX_TRACKS = 16
MAX_BLOBS = 32
INITIAL_SIGMA = 0.3  # °C, until the noise estimate has learnt the sensor


@dataclasses.dataclass(frozen=True, slots=True)
class CountingParams:
    """Tunables of the counting pipeline (defaults fit an MLX90640 about 2.5 m above a door).

    Everything that depends on time is declared per second; `as_array` turns it into per-frame
    limits for one frame rate, so the same defaults hold at 4, 8 and 16 frames a second.
    """

    background_s: float = 12.5  # time constant of the background's learning (frozen where people are)
    k_sigma: float = 4.0  # foreground above k noise sigmas ...
    min_delta: float = 1.5  # ... and at least this many °C above the background
    min_pixels: int = 4  # smaller blobs are noise
    person_width: float = 9.0  # columns one person spans above the threshold
    valley_ratio: float = 0.75  # a column valley below this fraction of the lower peak splits a blob
    wide_factor: float = 1.8  # a part wider than this many people is cut into equal widths
    max_speed: float = 60.0  # pixels per second of the fastest person (a sprint: the view in 0.4 s)
    jitter: float = 3.0  # pixels a blob's centre wobbles between frames besides walking (view edges, merges)
    max_missing_s: float = 0.4  # seconds a track may go unseen (merged, occluded) before it ends
    line_a: float = 0.35  # first counting line, as a fraction of the rows
    line_b: float = 0.65  # second counting line; between the two nothing changes (hysteresis)
    warmup_s: float = 1.0  # seconds after a start that only learn the background

    def max_jump(self, rate_hz: float) -> float:
        """Pixels a person may move between two frames at `rate_hz`."""
        return self.jitter + self.max_speed / rate_hz

    def max_missing(self, rate_hz: float) -> int:
        """Frames a track may coast unseen at `rate_hz` (at least one: one dropped frame never ends a track)."""
        return max(1, round(self.max_missing_s * rate_hz))

    def warmup(self, rate_hz: float) -> int:
        """Frames that only learn the background at `rate_hz`."""
        return max(1, math.ceil(self.warmup_s * rate_hz))

    def alpha(self, rate_hz: float) -> float:
        """Per-frame background learning rate: an exponential with time constant `background_s`."""
        return 1.0 - math.exp(-1.0 / (self.background_s * rate_hz))

    def as_array(self, rows: int, rate_hz: float) -> F64:
        """The parameter vector the kernels read, per frame at `rate_hz`, with the lines in row units."""
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be above 0, not {rate_hz!r}")
        values = [0.0] * N_PARAMS
        values[P_ALPHA], values[P_K_SIGMA], values[P_MIN_DELTA] = self.alpha(rate_hz), self.k_sigma, self.min_delta
        values[P_MIN_PIXELS], values[P_PERSON_WIDTH] = float(self.min_pixels), self.person_width
        values[P_VALLEY_RATIO], values[P_WIDE_FACTOR] = self.valley_ratio, self.wide_factor
        values[P_MAX_JUMP], values[P_MAX_MISSING] = self.max_jump(rate_hz), float(self.max_missing(rate_hz))
        values[P_LINE_A], values[P_LINE_B] = self.line_a * (rows - 1), self.line_b * (rows - 1)
        values[P_WARMUP] = float(self.warmup(rate_hz))
        return np.asarray(values, dtype=np.float64)
