"""Seeded thermal scenes for the GY-MCU90640 simulator: walkers, scenarios, frames and ground truth.

People are warm elliptical Gaussians (about 30–34 °C, coats cooler and larger, children smaller) on a
20–24 °C floor with a fixed pattern, a slow drift and ±0.3 °C sensor noise, walking along the rows.
A crossing is a walk across the door line (the middle row); moving towards higher rows is an entry
("in"). Every scenario is seeded and carries its ground truth, with the time of each crossing. Walks
are continuous in time, so one scenario can be rendered at any frame rate (`scenario(..., fps=4)`):
the same people, sampled more or less often.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

ROWS, COLS = 24, 32
DOOR_ROW = (ROWS - 1) / 2
ENTRY, EXIT = "in", "out"


@dataclasses.dataclass(frozen=True)
class Walker:
    """One person: walks along column `x` from row `y_from` to `y_to`; a lingerer turns at `turn_y`."""

    start_s: float
    x: float
    y_from: float
    y_to: float
    speed: float  # rows per second
    peak_c: float = 32.5
    sigma_x: float = 2.1
    sigma_y: float = 2.3
    turn_y: float | None = None
    dwell_s: float = 0.0
    drift_x: float = 0.0  # columns per second of sideways drift

    def _legs(self) -> list[tuple[float, float, float]]:
        """(start time, from row, to row) of each leg; a dwell is a leg that does not move."""
        if self.turn_y is None:
            return [(self.start_s, self.y_from, self.y_to)]
        t_turn = self.start_s + abs(self.turn_y - self.y_from) / self.speed
        return [
            (self.start_s, self.y_from, self.turn_y),
            (t_turn, self.turn_y, self.turn_y),
            (t_turn + self.dwell_s, self.turn_y, self.y_from),
        ]

    def end_s(self) -> float:
        """When the walker has left the view."""
        t, y0, y1 = self._legs()[-1]
        return t + abs(y1 - y0) / self.speed

    def position(self, t: float) -> tuple[float, float] | None:
        """(column, row) at time t, or None outside the walk."""
        if t < self.start_s or t > self.end_s():
            return None
        x = self.x + self.drift_x * (t - self.start_s)
        legs = self._legs()
        for i, (t0, y0, y1) in enumerate(legs):
            t_end = legs[i + 1][0] if i + 1 < len(legs) else self.end_s()
            if t <= t_end:
                if y0 == y1:
                    return x, y0
                step = self.speed * (t - t0)
                return x, y0 + math.copysign(min(step, abs(y1 - y0)), y1 - y0)
        return None

    def crossings(self) -> list[tuple[float, str]]:
        """(time, direction) of every walk across the door row."""
        out = []
        for t0, y0, y1 in self._legs():
            if y0 != y1 and min(y0, y1) < DOOR_ROW < max(y0, y1):
                out.append((t0 + abs(DOOR_ROW - y0) / self.speed, ENTRY if y1 > y0 else EXIT))
        return out


@dataclasses.dataclass(frozen=True)
class Scenario:
    """A seeded scene: walkers, frame rate, floor and noise; the frames and the truth follow from it."""

    name: str
    seed: int
    fps: float
    duration_s: float
    walkers: tuple[Walker, ...]
    floor_c: float = 22.0
    noise_c: float = 0.15  # sigma of the per-frame sensor noise (about ±0.3 °C)
    drift_c: float = 0.4  # slow floor warming over the scenario

    def crossings(self) -> list[tuple[float, str]]:
        """Every true crossing, sorted by time."""
        return sorted(c for w in self.walkers for c in w.crossings())

    def truth(self) -> dict[str, int]:
        """Entries (towards higher rows) and exits."""
        directions = [d for _, d in self.crossings()]
        return {"entries": directions.count(ENTRY), "exits": directions.count(EXIT)}

    def n_frames(self) -> int:
        """Frames in the scenario."""
        return int(self.duration_s * self.fps)


def render_frames(scenario: Scenario) -> npt.NDArray[np.int16]:
    """All frames of a scenario as (n, 24, 32) int16 °C×100 (deterministic for its seed)."""
    rng = np.random.default_rng(scenario.seed)
    rows, cols = np.mgrid[0:ROWS, 0:COLS].astype(np.float64)
    pattern = rng.normal(0.0, 0.2, size=(ROWS, COLS)) + 0.6 * (cols / COLS) - 0.3 * (rows / ROWS)
    n = scenario.n_frames()
    out = np.empty((n, ROWS, COLS), dtype=np.int16)
    for i in range(n):
        t = i / scenario.fps
        floor = scenario.floor_c + scenario.drift_c * t / max(scenario.duration_s, 1e-9) + pattern
        heat = np.zeros((ROWS, COLS))
        for walker in scenario.walkers:
            where = walker.position(t)
            if where is None:
                continue
            x, y = where
            shape = np.exp(-((cols - x) ** 2) / (2 * walker.sigma_x**2) - (rows - y) ** 2 / (2 * walker.sigma_y**2))
            heat = np.maximum(heat, (walker.peak_c - scenario.floor_c) * shape)  # bodies do not add heat
        frame = floor + heat + rng.normal(0.0, scenario.noise_c, size=(ROWS, COLS))
        out[i] = np.round(frame * 100).astype(np.int16)
    return out


def crossing_walker(rng: np.random.Generator, start_s: float, direction: str, **kw: float) -> Walker:
    """A walker across the whole view in one direction, with randomised build and temperature."""
    sigma_y = float(kw.pop("sigma_y", rng.uniform(2.0, 2.6)))
    margin = 2.5 * sigma_y
    y0, y1 = (-margin, ROWS - 1 + margin) if direction == ENTRY else (ROWS - 1 + margin, -margin)
    return Walker(
        start_s=start_s,
        x=float(kw.pop("x", rng.uniform(6, COLS - 7))),
        y_from=y0,
        y_to=y1,
        speed=float(kw.pop("speed", rng.uniform(10, 18))),
        peak_c=float(kw.pop("peak_c", rng.uniform(30.0, 34.0))),
        sigma_x=float(kw.pop("sigma_x", rng.uniform(1.8, 2.4))),
        sigma_y=sigma_y,
        drift_x=float(kw.pop("drift_x", rng.uniform(-1.0, 1.0))),
    )


def _direction(rng: np.random.Generator) -> str:
    return ENTRY if rng.random() < 0.5 else EXIT


def _singles(rng: np.random.Generator) -> list[Walker]:
    return [crossing_walker(rng, 1.5 + 3.5 * i, _direction(rng)) for i in range(12)]


def _pairs(rng: np.random.Generator) -> list[Walker]:
    out = []
    for i in range(8):
        direction, gap = _direction(rng), rng.uniform(7.0, 10.0)
        x, speed = rng.uniform(5, COLS - 6 - gap), rng.uniform(10, 16)
        for k in range(2):
            out.append(crossing_walker(rng, 1.5 + 4 * i + rng.uniform(0, 0.1), direction, x=x + k * gap, speed=speed))
    return out


def _opposite(rng: np.random.Generator) -> list[Walker]:
    out = []
    for i in range(8):
        left, right = rng.uniform(5, 11), rng.uniform(COLS - 11, COLS - 5)
        speed_a, speed_b = rng.uniform(10, 16), rng.uniform(10, 16)
        t = 1.5 + 4 * i
        # Start them so they meet near the door row.
        ta = t + (ROWS / 2) / speed_b - (ROWS / 2) / speed_a
        out.append(crossing_walker(rng, max(ta, t - 1), ENTRY, x=left, speed=speed_a, drift_x=0.0))
        out.append(crossing_walker(rng, t, EXIT, x=right, speed=speed_b, drift_x=0.0))
    return out


def _lingering(rng: np.random.Generator) -> list[Walker]:
    out = []
    for i in range(12):
        start = 1.5 + 6 * i
        if i % 3 == 2:
            out.append(crossing_walker(rng, start, _direction(rng)))  # real crossings among the lingerers
            continue
        sigma_y = rng.uniform(2.0, 2.6)
        from_top = rng.random() < 0.5
        edge = -2.5 * sigma_y if from_top else ROWS - 1 + 2.5 * sigma_y
        turn = rng.uniform(5.0, 9.0) if from_top else rng.uniform(ROWS - 10.0, ROWS - 6.0)
        out.append(
            Walker(
                start,
                rng.uniform(6, COLS - 7),
                edge,
                edge,
                rng.uniform(6, 12),
                rng.uniform(30, 34),
                rng.uniform(1.8, 2.4),
                sigma_y,
                turn_y=turn,
                dwell_s=rng.uniform(1.5, 4.0),
            )
        )
    return out


def _fast(rng: np.random.Generator) -> list[Walker]:
    return [crossing_walker(rng, 1.5 + 2.5 * i, _direction(rng), speed=rng.uniform(22, 30)) for i in range(12)]


def _coats(rng: np.random.Generator) -> list[Walker]:
    return [
        crossing_walker(
            rng,
            1.5 + 3.5 * i,
            _direction(rng),
            peak_c=rng.uniform(26.0, 28.5),
            sigma_x=rng.uniform(2.6, 3.1),
            sigma_y=rng.uniform(2.8, 3.4),
        )
        for i in range(10)
    ]


def _slow(rng: np.random.Generator) -> list[Walker]:
    return [crossing_walker(rng, 1.5 + 5 * i, _direction(rng), speed=rng.uniform(5, 8)) for i in range(8)]


def _children(rng: np.random.Generator) -> list[Walker]:
    # Running children: smaller and further below the sensor, so fewer warm pixels, and 30-42 rows/s.
    return [
        crossing_walker(
            rng,
            1.5 + 2.0 * i,
            _direction(rng),
            speed=rng.uniform(30, 42),
            peak_c=rng.uniform(30.5, 34.0),
            sigma_x=rng.uniform(1.4, 1.8),
            sigma_y=rng.uniform(1.5, 1.9),
        )
        for i in range(12)
    ]


def _fast_pairs(rng: np.random.Generator) -> list[Walker]:
    out = []
    for i in range(8):
        direction, gap = _direction(rng), rng.uniform(7.5, 10.0)
        x, speed = rng.uniform(5, COLS - 6 - gap), rng.uniform(22, 32)
        for k in range(2):
            out.append(crossing_walker(rng, 1.5 + 3 * i + rng.uniform(0, 0.05), direction, x=x + k * gap, speed=speed))
    return out


def _sprints(rng: np.random.Generator) -> list[Walker]:
    # Across the whole view (24 rows) in 0.45-0.55 s: at 4 Hz about 12 rows between two frames.
    return [
        crossing_walker(rng, 1.5 + 2.0 * i, _direction(rng), speed=ROWS / rng.uniform(0.45, 0.55)) for i in range(12)
    ]


def _busy(rng: np.random.Generator) -> list[Walker]:
    out: list[Walker] = []
    t = 1.5
    while len(out) < 30:
        kind = rng.choice(["single", "single", "pair", "coat", "fast", "linger"])
        d = _direction(rng)
        lane = 8.0 if d == ENTRY else 23.0  # keep to one side: people going opposite ways pass side by side
        if kind == "pair":
            s = rng.uniform(10, 15)
            out += [crossing_walker(rng, t, d, x=lane - 3.5, speed=s), crossing_walker(rng, t, d, x=lane + 4, speed=s)]
        elif kind == "coat":
            out.append(crossing_walker(rng, t, d, x=lane, peak_c=27.0, sigma_x=2.8, sigma_y=3.0, drift_x=0.0))
        elif kind == "fast":
            out.append(crossing_walker(rng, t, d, x=lane, speed=rng.uniform(20, 26), drift_x=0.0))
        elif kind == "linger":
            start, turn = (-5.5, 7.0) if d == ENTRY else (ROWS + 4.5, ROWS - 8.0)
            out.append(Walker(t, lane, start, start, 9.0, 32.0, 2.1, 2.2, turn_y=turn, dwell_s=2.0))
        else:
            out.append(crossing_walker(rng, t, d, x=lane, drift_x=0.0))
        t += float(rng.uniform(1.2, 2.6))
    return out


SCENARIO_BUILDERS: dict[str, tuple[Callable[[np.random.Generator], list[Walker]], float, float]] = {
    # name: (walkers, frames per second, floor °C)
    "single_walkers": (_singles, 8, 22.0),
    "slow_walkers": (_slow, 16, 21.0),
    "pairs_side_by_side": (_pairs, 8, 22.0),
    "opposite_directions": (_opposite, 10, 23.0),
    "lingering": (_lingering, 8, 22.0),
    "fast_walkers": (_fast, 8, 20.5),
    "coats": (_coats, 12, 21.0),
    "mixed_busy": (_busy, 16, 24.0),
    # New scenes go last: a scene's walkers are seeded by its position in this table.
    "running_children": (_children, 8, 21.5),
    "fast_pairs": (_fast_pairs, 8, 22.5),
    "sprint_half_second": (_sprints, 8, 22.0),
}
SCENARIOS = tuple(SCENARIO_BUILDERS)
RATES_HZ = (4.0, 8.0, 16.0)  # the frame rates counting accuracy is measured (and promised) at


def scenario(name: str, seed: int = 1, fps: float | None = None) -> Scenario:
    """A named scenario (see SCENARIOS) for a seed, at its own frame rate or at `fps`."""
    if name not in SCENARIO_BUILDERS:
        raise ValueError(f"unknown scenario {name!r}; use one of {', '.join(SCENARIOS)}")
    build, native_fps, floor = SCENARIO_BUILDERS[name]
    walkers = tuple(build(np.random.default_rng([seed, SCENARIOS.index(name)])))
    duration = max(w.end_s() for w in walkers) + 1.5
    return Scenario(name, seed, fps or native_fps, duration, walkers, floor_c=floor)


@dataclasses.dataclass(frozen=True)
class Score:
    """Counted crossings matched to the truth by direction and time."""

    true_crossings: int
    counted: int
    matched: int

    @property
    def missed(self) -> int:
        """True crossings with no counted crossing of the same direction nearby in time."""
        return self.true_crossings - self.matched

    @property
    def false(self) -> int:
        """Counted crossings with no true crossing to match."""
        return self.counted - self.matched

    @property
    def accuracy(self) -> float:
        """1 − (missed + false) / true crossings, floored at 0."""
        if self.true_crossings == 0:
            return 1.0 if self.counted == 0 else 0.0
        return max(0.0, 1.0 - (self.missed + self.false) / self.true_crossings)


def score_crossings(truth: list[tuple[float, str]], counted: list[tuple[float, str]], window_s: float = 1.5) -> Score:
    """Match each counted crossing to the earliest unmatched true one of its direction within `window_s`."""
    used = [False] * len(truth)
    matched = 0
    for t_count, direction in sorted(counted):
        for i, (t_true, true_direction) in enumerate(truth):
            if not used[i] and true_direction == direction and abs(t_true - t_count) <= window_s:
                used[i] = True
                matched += 1
                break
    return Score(len(truth), len(counted), matched)


def score_counter(feed: Callable[[npt.NDArray[np.int16]], tuple[int, int]], scene: Scenario) -> Score:
    """Play a scene's frames through `feed` (one frame in, (down, up) out) and score it against the truth."""
    counted: list[tuple[float, str]] = []
    for i, frame in enumerate(render_frames(scene)):
        down, up = feed(frame)
        counted += [(i / scene.fps, ENTRY)] * down + [(i / scene.fps, EXIT)] * up
    return score_crossings(scene.crossings(), counted)
