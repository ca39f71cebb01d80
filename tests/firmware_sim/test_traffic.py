"""The seeded store-traffic model and its ground truth."""

from __future__ import annotations

import itertools
from collections import Counter

from firmware_sim.traffic import (
    ENTRY,
    HOUR_NS,
    NS_PER_S,
    TrafficModel,
    generate,
    ground_truth,
    hour_iso,
    parse_utc,
)

START = parse_utc("2026-11-16T00:00:00Z")  # a Monday
WEEK_END = START + 7 * 24 * HOUR_NS


def week(seed: int = 7, **extra: object) -> list:
    return generate(TrafficModel(doors=("front", "back"), seed=seed, **extra), START, WEEK_END)  # type: ignore[arg-type]


def test_same_seed_gives_the_same_events() -> None:
    assert week(7) == week(7)
    assert week(7) != week(8)


def test_events_are_sorted_inside_the_interval_and_opening_hours() -> None:
    events = week()
    assert events == sorted(events)
    assert all(START <= e.t_ns < WEEK_END for e in events)
    assert all(8 <= (e.t_ns % (24 * HOUR_NS)) // HOUR_NS < 21 for e in events)
    assert len(events) > 1000


def test_no_event_falls_inside_the_guard_band_around_an_hour_boundary() -> None:
    guard = 120 * NS_PER_S
    assert all(guard <= e.t_ns % HOUR_NS < HOUR_NS - guard for e in week())
    wide = 600 * NS_PER_S
    assert all(wide <= e.t_ns % HOUR_NS < HOUR_NS - wide for e in week(guard_s=600))


def test_ground_truth_equals_the_sum_of_events() -> None:
    events = week()
    truth = ground_truth(events, ("front", "back"), START, WEEK_END)
    counted = Counter((e.door, hour_iso(e.t_ns), e.direction) for e in events)
    assert len(truth["front"]) == 7 * 24
    for door, hours in truth.items():
        for hour, cell in hours.items():
            assert cell == {"entries": counted[(door, hour, ENTRY)], "exits": counted[(door, hour, "out")]}
    assert sum(c["entries"] for h in truth.values() for c in h.values()) == sum(e.direction == ENTRY for e in events)


def test_everyone_who_enters_leaves_by_closing_time() -> None:
    events = week()
    assert sum(e.direction == ENTRY for e in events) == sum(e.direction != ENTRY for e in events)


def test_groups_produce_clustered_crossings() -> None:
    events = [e for e in week() if e.direction == ENTRY]
    gaps = [(b.t_ns - a.t_ns) / NS_PER_S for a, b in itertools.pairwise(events) if a.door == b.door]
    close = sum(0.4 <= g <= 1.6 for g in gaps)
    # Independent arrivals at ~30 groups per hour would put well under 1 % of gaps in a 1.2 s window.
    assert close / len(gaps) > 0.25


def test_weekday_and_hour_shape_the_traffic() -> None:
    per_hour = Counter((e.t_ns % (24 * HOUR_NS)) // HOUR_NS for e in week() if e.direction == ENTRY)
    assert per_hour[12] > 1.5 * per_hour[8]
    per_day = Counter((e.t_ns - START) // (24 * HOUR_NS) for e in week() if e.direction == ENTRY)
    assert per_day[5] > per_day[6]  # Saturday busier than Sunday
