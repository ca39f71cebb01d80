"""The pure two-beam direction state machine: order, glitches, ambiguity, timeouts, re-arm, fuzzing."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.beam_gpio.protocol import ENTRY, EXIT, BeamDirection

FUZZ = settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def crossing(first: str, t0: float, gap: float = 0.1, hold: float = 0.3) -> list[tuple[str, bool, float]]:
    second = "b" if first == "a" else "a"
    return [(first, True, t0), (second, True, t0 + gap), (first, False, t0 + hold), (second, False, t0 + hold + gap)]


def run(machine: BeamDirection, edges: list[tuple[str, bool, float]]) -> list[str]:
    out: list[str] = []
    for beam, broken, t in edges:
        out += machine.feed(beam, broken, t)
    return out


def test_a_then_b_is_an_entry_and_b_then_a_an_exit() -> None:
    machine = BeamDirection()
    assert run(machine, crossing("a", 0.0) + crossing("b", 2.0)) == [ENTRY, EXIT]


def test_direction_comes_from_which_break_started_first_not_which_cleared_first() -> None:
    edges = [("a", True, 0.0), ("b", True, 0.1), ("b", False, 0.3), ("a", False, 0.5)]
    assert run(BeamDirection(), edges) == [ENTRY]


def test_a_short_break_is_a_glitch() -> None:
    machine = BeamDirection(min_broken_s=0.04)
    edges = [("a", True, 0.0), ("a", False, 0.01), *crossing("b", 1.0)]
    assert run(machine, edges) == [EXIT]
    assert machine.glitches == 1


def test_breaks_that_start_together_are_ambiguous_and_discarded() -> None:
    machine = BeamDirection(simultaneous_s=0.01)
    edges = [("a", True, 0.0), ("b", True, 0.005), ("a", False, 0.4), ("b", False, 0.4)]
    assert run(machine, edges) == []
    assert machine.ambiguous == 1


def test_one_beam_only_times_out() -> None:
    machine = BeamDirection(timeout_s=1.0)
    run(machine, [("a", True, 0.0), ("a", False, 0.3)])
    assert machine.tick(1.5) == [] and machine.timeouts == 1
    assert run(machine, crossing("a", 2.0)) == [ENTRY]


def test_a_blocked_beam_times_out_and_is_ignored_until_it_clears() -> None:
    machine = BeamDirection(timeout_s=1.0)
    run(machine, [("a", True, 0.0)])
    machine.tick(2.0)
    assert machine.timeouts == 1
    assert run(machine, [("b", True, 5.0), ("a", False, 5.1), ("b", False, 5.3)]) == []
    assert run(machine, crossing("b", 7.0)) == [EXIT]


def test_breaks_during_rearm_are_ignored() -> None:
    machine = BeamDirection(rearm_s=0.5)
    edges = [*crossing("a", 0.0), ("b", True, 0.45), ("b", False, 0.55), *crossing("a", 2.0)]
    assert run(machine, edges) == [ENTRY, ENTRY]


@FUZZ
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "x"]), st.booleans(), st.floats(0, 0.5, allow_nan=False)), max_size=80
    )
)
def test_random_edges_never_raise(steps: list[tuple[str, bool, float]]) -> None:
    machine = BeamDirection()
    t = 0.0
    for beam, broken, dt in steps:
        t += dt
        machine.feed(beam, broken, t)
        machine.tick(t)


@FUZZ
@given(
    st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=10),
    st.lists(st.tuples(st.sampled_from(["a", "b"]), st.floats(0.0, 0.02)), max_size=10),
)
def test_clean_crossings_between_glitches_are_all_counted(firsts: list[str], glitches: list[tuple[str, float]]) -> None:
    machine = BeamDirection(min_broken_s=0.04, rearm_s=0.15, timeout_s=2.0)
    out: list[str] = []
    t = 0.0
    for i, first in enumerate(firsts):
        if i < len(glitches):
            beam, length = glitches[i]
            out += run(machine, [(beam, True, t), (beam, False, t + length)])
            t += 0.5
        out += run(machine, crossing(first, t))
        t += 1.0
    assert out == [ENTRY if f == "a" else EXIT for f in firsts]
