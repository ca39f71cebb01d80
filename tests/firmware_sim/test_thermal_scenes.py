"""The thermal simulator's scenes: any frame rate, the fast walkers they promise, and scoring."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_sim.thermal90640 import (
    ENTRY,
    RATES_HZ,
    ROWS,
    SCENARIOS,
    render_frames,
    scenario,
    score_counter,
)


@pytest.mark.parametrize("name", SCENARIOS)
def test_a_scene_at_another_rate_has_the_same_people_and_truth(name: str) -> None:
    native, slow = scenario(name, 2), scenario(name, 2, 4.0)
    assert slow.fps == 4.0 and slow.walkers == native.walkers and slow.crossings() == native.crossings()
    assert slow.n_frames() == int(native.duration_s * 4.0)


def test_the_fast_scenes_are_as_fast_as_they_say() -> None:
    speeds = {name: [w.speed for seed in (1, 2, 3) for w in scenario(name, seed).walkers] for name in SCENARIOS}
    assert min(speeds["running_children"]) >= 30 and max(speeds["running_children"]) <= 42
    assert min(speeds["fast_pairs"]) >= 22
    # The sprint crosses the view's 24 rows in about half a second.
    assert all(0.45 <= ROWS / s <= 0.55 for s in speeds["sprint_half_second"])


def test_fast_pairs_walk_side_by_side() -> None:
    walkers = scenario("fast_pairs", 1).walkers
    for a, b in zip(walkers[::2], walkers[1::2], strict=True):
        assert a.speed == b.speed and 7.5 <= abs(a.x - b.x) <= 10.0 and abs(a.start_s - b.start_s) <= 0.05


def test_a_counter_that_reports_the_truth_scores_one_and_a_silent_one_zero() -> None:
    scene = scenario("sprint_half_second", 1, 4.0)
    due = {round(t * scene.fps + 0.5): d for t, d in scene.crossings()}  # the first frame after each crossing
    frame_no = iter(range(scene.n_frames()))

    def oracle(_frame: np.ndarray) -> tuple[int, int]:
        d = due.get(next(frame_no))
        return int(d == ENTRY), int(d is not None and d != ENTRY)

    assert score_counter(oracle, scene).accuracy == 1.0
    assert score_counter(lambda _frame: (0, 0), scene).accuracy == 0.0


def test_the_rates_rendered_give_frames_of_the_sensor_shape() -> None:
    for rate in RATES_HZ:
        frames = render_frames(scenario("running_children", 1, rate))
        assert frames.shape[1:] == (24, 32) and frames.dtype == np.int16
