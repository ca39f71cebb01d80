"""The thermal counting kernels against slow references (with and without JIT), and counting accuracy.

Accuracy is measured on seeded simulator scenarios with known crossings, each played at 4, 8 and
16 frames a second with the default parameters. A counted crossing is matched to the earliest
unmatched true crossing of the same direction within 1.5 s; accuracy = 1 − (missed + false) / true
crossings (`firmware_sim.thermal90640.score_crossings`), so a miss and a false count never cancel out.
"""

from __future__ import annotations

import os
import subprocess
import sys
from functools import cache

import numpy as np
import pytest

from agent.kernels.thermal import (
    MAX_TRACKS,
    N_TRACK_COLS,
    P_ALPHA,
    P_MAX_JUMP,
    P_MAX_MISSING,
    P_WARMUP,
    T_ACTIVE,
    CountingParams,
    ThermalCounter,
    label_blobs,
    measure_blobs,
    split_profile,
    threshold_frame,
    track_blobs,
    update_background,
)
from agent.kernels.thermal_numpy import ThermalCounterNumpy, label_runs
from firmware_sim.thermal90640 import (
    RATES_HZ,
    SCENARIOS,
    Score,
    render_frames,
    scenario,
    score_counter,
    score_crossings,
)

ACCURACY_SEEDS = (1, 2, 3)
PARAMS = CountingParams().as_array(24, rate_hz=8.0)
FAST_SCENARIOS = ("fast_walkers", "running_children", "fast_pairs", "sprint_half_second")


def reference_labels(mask: np.ndarray) -> list[set[tuple[int, int]]]:
    """Components by union-find over every pair of touching foreground pixels (8-neighbourhood)."""
    parent = {p: p for p in zip(*np.nonzero(mask), strict=True)}

    def find(p: tuple[int, int]) -> tuple[int, int]:
        while parent[p] != p:
            p = parent[p]
        return p

    for r, c in list(parent):
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                q = (r + dr, c + dc)
                if q in parent:
                    parent[find(q)] = find((r, c))
    groups: dict[tuple[int, int], set[tuple[int, int]]] = {}
    for p in parent:
        groups.setdefault(find(p), set()).add((int(p[0]), int(p[1])))
    return sorted(groups.values(), key=min)


def components_of(labels: np.ndarray, n: int) -> list[set[tuple[int, int]]]:
    return [{(int(r), int(c)) for r, c in zip(*np.nonzero(labels == k), strict=True)} for k in range(1, n + 1)]


@pytest.mark.parametrize("seed", range(6))
def test_label_blobs_matches_union_find_in_raster_order(seed: int) -> None:
    mask = (np.random.default_rng(seed).random((24, 32)) < 0.3 + 0.05 * seed).astype(np.uint8)
    labels = np.zeros((24, 32), dtype=np.int32)
    n = label_blobs(mask, labels, np.zeros(24 * 32, dtype=np.int32))
    expected = reference_labels(mask)
    assert components_of(labels, n) == expected  # same parts, numbered by their first pixel in raster order
    numpy_labels, numpy_n, _runs = label_runs(mask.astype(bool))
    assert components_of(numpy_labels, numpy_n) == expected


def test_diagonal_pixels_join_one_blob() -> None:
    mask = np.eye(24, 32, dtype=np.uint8)
    labels = np.zeros((24, 32), dtype=np.int32)
    assert label_blobs(mask, labels, np.zeros(768, dtype=np.int32)) == 1


@pytest.mark.parametrize("seed", range(4))
def test_threshold_frame_matches_a_pixel_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    frame, bg = rng.normal(22, 2, (24, 32)), rng.normal(22, 1, (24, 32))
    var = rng.uniform(0.01, 0.5, (24, 32))
    excess, mask = np.zeros((24, 32)), np.zeros((24, 32), dtype=np.uint8)
    count = threshold_frame(frame, bg, var, 4.0, 1.5, excess, mask)
    expected = [
        [1 if frame[r, c] - bg[r, c] > max(4.0 * var[r, c] ** 0.5, 1.5) else 0 for c in range(32)] for r in range(24)
    ]
    assert mask.tolist() == expected and count == sum(map(sum, expected))
    np.testing.assert_allclose(excess, frame - bg)


def test_background_learns_only_away_from_foreground() -> None:
    bg, var = np.full((24, 32), 20.0), np.full((24, 32), 0.04)
    frame = np.full((24, 32), 21.0)
    mask = np.zeros((24, 32), dtype=np.uint8)
    mask[10, 10] = 1
    update_background(frame, bg, var, mask, 0.1, 100)
    for r in range(24):
        for c in range(32):
            near = abs(r - 10) <= 1 and abs(c - 10) <= 1
            assert bg[r, c] == pytest.approx(20.0 if near else 20.1), (r, c)
            assert var[r, c] == pytest.approx(0.04 if near else 0.04 + 0.1 * (1.0 - 0.04))


def two_people_profile(gap: float, sigma: float = 2.1) -> np.ndarray:
    cols = np.arange(32, dtype=np.float64)
    return np.exp(-((cols - 10) ** 2) / (2 * sigma**2)) + np.exp(-((cols - 10 - gap) ** 2) / (2 * sigma**2))


@pytest.mark.parametrize(("gap", "parts"), [(8.0, 2), (9.5, 2), (3.0, 1)])
def test_split_profile_separates_two_people_side_by_side(gap: float, parts: int) -> None:
    profile = two_people_profile(gap)
    ends = np.zeros(33, dtype=np.int64)
    assert split_profile(profile, 4, int(16 + gap), 9.0, 0.75, 1.8, ends) == parts


def test_split_profile_cuts_a_flat_very_wide_blob_into_person_widths() -> None:
    ends = np.zeros(33, dtype=np.int64)
    n = split_profile(np.ones(32), 0, 26, 9.0, 0.75, 1.8, ends)
    assert ends[:n].tolist() == [8, 17, 26]


def test_measure_blobs_gives_the_heat_weighted_centroid() -> None:
    rng = np.random.default_rng(4)
    excess = np.zeros((24, 32))
    excess[5:9, 20:24] = rng.uniform(2, 9, (4, 4))
    labels = (excess > 0).astype(np.int32)
    bx, by, mass = np.zeros(32), np.zeros(32), np.zeros(32)
    assert measure_blobs(labels, 1, excess, PARAMS, bx, by, mass) == 1
    rows, cols = np.nonzero(labels)
    weights = excess[rows, cols]
    assert (bx[0], by[0]) == pytest.approx((np.average(cols, weights=weights), np.average(rows, weights=weights)))


@pytest.mark.parametrize(
    ("rate_hz", "jump", "missing", "warmup"), [(4.0, 18.0, 2, 4), (8.0, 10.5, 3, 8), (16.0, 6.75, 6, 16)]
)
def test_per_frame_limits_follow_the_frame_rate(rate_hz: float, jump: float, missing: int, warmup: int) -> None:
    params = CountingParams().as_array(24, rate_hz)
    assert (params[P_MAX_JUMP], params[P_MAX_MISSING], params[P_WARMUP]) == (jump, missing, warmup)
    # The background's time constant stays 12.5 s: alpha per frame shrinks as frames come faster.
    assert (1 - params[P_ALPHA]) ** (12.5 * rate_hz) == pytest.approx(np.exp(-1.0))


def test_a_frame_rate_of_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="rate_hz"):
        CountingParams().as_array(24, 0.0)


def test_set_rate_changes_the_limits_and_keeps_the_background() -> None:
    counter = ThermalCounter(rate_hz=8.0)
    counter.feed(np.full((24, 32), 2150, dtype=np.int16))
    counter.set_rate(4.0)
    assert counter.rate_hz == 4.0 and counter._params[P_MAX_JUMP] == 18.0
    assert counter.bg == pytest.approx(np.full((24, 32), 21.5))


def test_coasting_lasts_at_least_one_frame_however_short() -> None:
    assert CountingParams(max_missing_s=0.0).max_missing(4.0) == 1


def sprint(params: np.ndarray, ys: list[float]) -> tuple[int, int, int]:
    """One person seen at rows `ys` in successive frames -> (down, up, most tracks alive at once)."""
    tracks, crossings, most = np.zeros((MAX_TRACKS, N_TRACK_COLS)), np.zeros(2, dtype=np.int64), 0
    for y in ys:
        track_blobs(tracks, np.array([15.0]), np.array([y]), 1, params, crossings)
        most = max(most, int(tracks[:, T_ACTIVE].sum()))
    return int(crossings[0]), int(crossings[1]), most


def test_a_sprinter_twelve_rows_a_frame_is_one_track_and_one_crossing_at_4_hz() -> None:
    ys = [0.5, 12.5, 22.5]  # across the view in half a second, seen every quarter second
    assert sprint(CountingParams().as_array(24, 4.0), ys) == (1, 0, 1)
    # The limit derived for 8 Hz (10.5 px) would lose the sprinter: two tracks, no crossing.
    assert sprint(CountingParams().as_array(24, 8.0), ys)[0] == 0


def reference_crossings(ys: list[float], line_a: float, line_b: float) -> tuple[int, int]:
    """One person's row per frame -> (down, up): a side change across both lines is one crossing."""
    down = up = 0
    side = None
    for y in ys:
        now = -1 if y < line_a else (1 if y > line_b else 0)
        if now == 0:
            continue
        if side is not None and now != side:
            down, up = down + (now > 0), up + (now < 0)
        side = now
    return down, up


@pytest.mark.parametrize("seed", range(8))
def test_track_blobs_counts_like_the_two_line_state_machine(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # A jittery random walk that starts outside the band and wanders across it, back and forth.
    ys = list(np.clip(np.cumsum(rng.normal(0, 1.8, 120)) + 3.0, -2, 25))
    line_a, line_b = PARAMS[9], PARAMS[10]
    tracks = np.zeros((MAX_TRACKS, N_TRACK_COLS))
    crossings = np.zeros(2, dtype=np.int64)
    for y in ys:
        track_blobs(tracks, np.array([12.0]), np.array([y]), 1, PARAMS, crossings)
        assert tracks[:, T_ACTIVE].sum() == 1  # a step within max_jump never starts a second track
    assert tuple(crossings) == reference_crossings(ys, line_a, line_b)


def test_lingering_in_the_band_counts_nothing() -> None:
    tracks, crossings = np.zeros((MAX_TRACKS, N_TRACK_COLS)), np.zeros(2, dtype=np.int64)
    for y in [2.0, 4.0, 6.0, 8.5, 10.0, 12.0, 14.0, 14.5, 13.0, 14.5, 11.0, 9.0, 7.0, 5.0, 3.0, 1.0]:
        track_blobs(tracks, np.array([12.0]), np.array([y]), 1, PARAMS, crossings)
    assert crossings.tolist() == [0, 0]


def run_counter(counter: ThermalCounter | ThermalCounterNumpy, frames: np.ndarray) -> list[tuple[int, int]]:
    return [counter.feed(frame) for frame in frames]


@pytest.mark.parametrize(
    ("name", "rate_hz"),
    [("pairs_side_by_side", 8.0), ("opposite_directions", 16.0), ("sprint_half_second", 4.0), ("fast_pairs", 4.0)],
)
def test_numpy_pipeline_gives_the_same_counts_frame_by_frame(name: str, rate_hz: float) -> None:
    frames = render_frames(scenario(name, 1, rate_hz))[:200]
    counts = run_counter(ThermalCounter(rate_hz=rate_hz), frames)
    assert counts == run_counter(ThermalCounterNumpy(rate_hz=rate_hz), frames)
    assert sum(d + u for d, u in counts) > 0  # the frames hold crossings: agreement is not on zeros alone


@cache
def score_scenario(name: str, seed: int, rate_hz: float) -> Score:
    return score_counter(ThermalCounter(rate_hz=rate_hz).feed, scenario(name, seed, rate_hz))


@pytest.mark.parametrize("rate_hz", RATES_HZ)
def test_accuracy_over_all_scenarios_is_at_least_95_percent_at_each_rate(rate_hz: float) -> None:
    scores = {(name, seed): score_scenario(name, seed, rate_hz) for name in SCENARIOS for seed in ACCURACY_SEEDS}
    true = sum(s.true_crossings for s in scores.values())
    errors = sum(s.missed + s.false for s in scores.values())
    assert len(SCENARIOS) >= 11 and true >= 400
    assert 1 - errors / true >= 0.95, {k: (s.missed, s.false) for k, s in scores.items() if s.missed or s.false}


def test_the_rates_measured_are_4_8_and_16_hz() -> None:
    assert RATES_HZ == (4.0, 8.0, 16.0)


@pytest.mark.parametrize("rate_hz", RATES_HZ)
@pytest.mark.parametrize("name", SCENARIOS)
def test_each_scenario_is_counted_at_least_90_percent_right(name: str, rate_hz: float) -> None:
    scores = [score_scenario(name, seed, rate_hz) for seed in ACCURACY_SEEDS]
    true = sum(s.true_crossings for s in scores)
    assert 1 - sum(s.missed + s.false for s in scores) / true >= 0.9, [(s.missed, s.false) for s in scores]


@pytest.mark.parametrize("name", FAST_SCENARIOS)
def test_every_second_frame_of_an_8_hz_stream_counts_fast_walkers_at_the_default_4_hz(name: str) -> None:
    # The reproduction: the module at rate_hz = 4 sends every second frame of its 8 Hz stream.
    scores = []
    for seed in ACCURACY_SEEDS:
        scene, counter = scenario(name, seed, 8.0), ThermalCounter(rate_hz=4.0)
        counted: list[tuple[float, str]] = []
        for i, frame in enumerate(render_frames(scene)[::2]):
            down, up = counter.feed(frame)
            counted += [(i / 4.0, "in")] * down + [(i / 4.0, "out")] * up
        scores.append(score_crossings(scene.crossings(), counted))
    true = sum(s.true_crossings for s in scores)
    assert 1 - sum(s.missed + s.false for s in scores) / true >= 0.95, [(s.missed, s.false) for s in scores]


@pytest.mark.parametrize("rate_hz", RATES_HZ)
def test_lingering_people_are_never_counted_as_crossing(rate_hz: float) -> None:
    for seed in ACCURACY_SEEDS:
        assert score_scenario("lingering", seed, rate_hz).false == 0


# Everything but the accuracy runs (whole scenarios, far too slow for pure-Python kernels).
WITHOUT_JIT = "not jit_disabled and not accuracy and not percent_right and not lingering_people and not 8_hz_stream"


def test_same_results_with_numba_jit_disabled() -> None:
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    result = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
            "-k", WITHOUT_JIT,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed" in result.stdout
