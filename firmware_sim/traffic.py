"""A seeded store-traffic model: who crosses which door, when, and the ground truth per UTC hour.

Shoppers arrive in groups (a group of k people is k crossings a second or so apart), at a rate
shaped by opening hours, weekday and hour of day, with occasional bursts (a bus, a sale), and leave
after a dwell time, again as a group. Time is UTC (a shop's local offset does not matter to the
simulation).

Guard band: no crossing is placed within `guard_s` of an hour boundary. The agent stamps each
reading when it receives it; under an accelerated clock (1440x: one real millisecond is 1.44
simulated seconds) the few milliseconds between the simulator writing a frame and the agent
stamping it are whole simulated seconds, so an event just before hh:00 could land in the next
window and the hourly ground truth would no longer be exact. 120 s of margin is 83 real ms at
1440x, far more than pty plus ingest latency. numpy's seeded Generator is fine here: this is a
simulation, not privacy noise.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

NS_PER_S = 1_000_000_000
HOUR_NS = 3600 * NS_PER_S
ENTRY, EXIT = "in", "out"

# Relative busyness by hour of day (local = UTC here): morning ramp, lunch peak, evening peak.
HOUR_SHAPE = (
    0, 0, 0, 0, 0, 0, 0, 0.3, 0.5, 0.7, 0.8, 0.9,
    1.0, 0.95, 0.75, 0.7, 0.8, 0.95, 1.0, 0.8, 0.5, 0.3, 0, 0,
)  # fmt: skip
# Monday..Sunday.
WEEKDAY_FACTOR = (0.8, 0.85, 0.9, 0.95, 1.15, 1.3, 0.6)


class Crossing(NamedTuple):
    """One person crossing one door: simulated UTC time (ns), door, "in" or "out"."""

    t_ns: int
    door: str
    direction: str


@dataclasses.dataclass(frozen=True)
class TrafficModel:
    """Parameters of the store's traffic; `generate` is deterministic for a given seed."""

    doors: tuple[str, ...]
    seed: int
    groups_per_peak_hour: float = 30.0
    open_hour: int = 8  # first open hour (UTC)
    close_hour: int = 21  # first closed hour (UTC)
    closed_weekdays: tuple[int, ...] = ()  # 0 = Monday
    group_sizes: tuple[float, ...] = (0.55, 0.28, 0.11, 0.06)  # P(size = 1, 2, 3, 4)
    member_gap_s: tuple[float, float] = (0.4, 1.6)
    burst_probability: float = 0.08  # per open hour
    burst_groups: tuple[int, int] = (5, 15)
    burst_minutes: float = 4.0
    dwell_mean_s: float = 900.0
    same_door_exit: float = 0.8
    guard_s: float = 120.0

    def __post_init__(self) -> None:
        if not self.doors:
            raise ValueError("a traffic model needs at least one door")
        if not 0 <= self.guard_s < 1200:
            raise ValueError("guard_s must be between 0 and 1200 seconds")


def _hour_rate(model: TrafficModel, hour_start_ns: int) -> float:
    when = dt.datetime.fromtimestamp(hour_start_ns / NS_PER_S, tz=dt.UTC)
    if when.weekday() in model.closed_weekdays or not model.open_hour <= when.hour < model.close_hour:
        return 0.0
    return model.groups_per_peak_hour * HOUR_SHAPE[when.hour] * WEEKDAY_FACTOR[when.weekday()]


def _open_span(model: TrafficModel, t_ns: int) -> bool:
    return _hour_rate(model, t_ns - t_ns % HOUR_NS) > 0


def _out_of_guard(model: TrafficModel, t_ns: int, span_ns: int, forward: bool = True) -> int:
    """Move a group of crossings spanning `span_ns` so that it avoids every guard band."""
    guard = int(model.guard_s * NS_PER_S)
    into = t_ns % HOUR_NS
    if into < guard:
        return t_ns - into + guard
    if into + span_ns >= HOUR_NS - guard:
        if forward:
            return t_ns - into + HOUR_NS + guard
        return t_ns - into + HOUR_NS - guard - span_ns - 1
    return t_ns


def generate(model: TrafficModel, start_ns: int, end_ns: int) -> list[Crossing]:
    """All crossings in [start_ns, end_ns), sorted by time; none within guard_s of an hour boundary."""
    rng = np.random.default_rng(model.seed)
    guard = int(model.guard_s * NS_PER_S)
    sizes = np.arange(1, len(model.group_sizes) + 1)
    probabilities = np.asarray(model.group_sizes) / sum(model.group_sizes)
    events: list[Crossing] = []
    first_hour = start_ns - start_ns % HOUR_NS
    for hour_start in range(first_hour, end_ns, HOUR_NS):
        rate = _hour_rate(model, hour_start)
        if rate <= 0:
            continue
        arrivals = list(rng.uniform(guard, HOUR_NS - guard, size=rng.poisson(rate)))
        if rng.random() < model.burst_probability:
            centre = rng.uniform(guard, HOUR_NS - guard)
            width = model.burst_minutes * 60 * NS_PER_S
            count = int(rng.integers(model.burst_groups[0], model.burst_groups[1] + 1))
            arrivals += list(np.clip(rng.normal(centre, width / 2, size=count), guard, HOUR_NS - guard))
        for offset in sorted(arrivals):
            size = int(rng.choice(sizes, p=probabilities))
            gaps = rng.uniform(*model.member_gap_s, size=size) * NS_PER_S
            gaps[0] = 0
            member_offsets = np.cumsum(gaps).astype(np.int64)
            span = int(member_offsets[-1])
            door_in = model.doors[int(rng.integers(len(model.doors)))]
            door_out = door_in
            if len(model.doors) > 1 and rng.random() > model.same_door_exit:
                door_out = model.doors[int(rng.integers(len(model.doors)))]
            t_in = _out_of_guard(model, hour_start + int(offset), span, forward=False)
            t_out = _out_of_guard(model, t_in + span + int(rng.exponential(model.dwell_mean_s) * NS_PER_S), span)
            if not _open_span(model, t_out):
                # Closing time: everyone still inside leaves in the last open hour's final minutes.
                last_open = t_out - t_out % HOUR_NS
                while last_open > t_in and not _open_span(model, last_open):
                    last_open -= HOUR_NS
                latest = last_open + HOUR_NS - guard - span - 1  # the whole group out before the guard band
                leave = latest - int(rng.uniform(0, 300) * NS_PER_S)
                t_out = min(max(leave, t_in + 1), latest)  # each member leaves after entering: t_out > t_in
            for member in member_offsets:
                events.append(Crossing(t_in + int(member), door_in, ENTRY))
                events.append(Crossing(t_out + int(member), door_out, EXIT))
    return sorted(e for e in events if start_ns <= e.t_ns < end_ns)


def hour_iso(t_ns: int) -> str:
    """The UTC hour containing t_ns, as `2026-11-16T09:00:00Z`."""
    start = t_ns - t_ns % HOUR_NS
    return dt.datetime.fromtimestamp(start // NS_PER_S, tz=dt.UTC).strftime("%Y-%m-%dT%H:00:00Z")


def ground_truth(
    events: Iterable[Crossing], doors: Iterable[str], start_ns: int, end_ns: int
) -> dict[str, dict[str, dict[str, int]]]:
    """Entries and exits per door per UTC hour, with every hour of [start, end) present (zeros too)."""
    hours = [hour_iso(h) for h in range(start_ns - start_ns % HOUR_NS, end_ns, HOUR_NS)]
    truth = {door: {hour: {"entries": 0, "exits": 0} for hour in hours} for door in doors}
    for event in events:
        cell = truth[event.door][hour_iso(event.t_ns)]
        cell["entries" if event.direction == ENTRY else "exits"] += 1
    return truth


def parse_utc(text: str) -> int:
    """`2026-11-16T00:00:00Z` (or with an offset) as ns since the epoch."""
    when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp()) * NS_PER_S + when.microsecond * 1000
