"""The beam driver on gpiozero's MockFactory pins: crossings, glitches, ambiguity, missing gpiozero, stop."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any

import gpiozero.pins.mock as mock
import pytest

from agent.driver_api import DoorCount, DriverOptionError
from agent.driver_api.kit import RecordingSink
from drivers.beam_gpio.driver import BeamGpioDriver

OPTIONS = {"door": "back", "pin_a": 17, "pin_b": 27}


@pytest.mark.parametrize(
    ("bad", "key"),
    [
        ({"pin_a": 17, "pin_b": 27}, "door"),
        ({"door": "back", "pin_b": 27}, "pin_a"),
        ({"door": "back", "pin_a": 17, "pin_b": 17}, "pin_b"),
        ({"door": "back", "pin_a": 40, "pin_b": 27}, "pin_a"),
        ({"door": "back", "pin_a": "GPIO17", "pin_b": "pin27"}, "pin_b"),
        ({**OPTIONS, "pull_up": "yes"}, "pull_up"),
        ({**OPTIONS, "min_broken_s": -0.1}, "min_broken_s"),
        ({**OPTIONS, "port": "/dev/x"}, "port"),
    ],
)
def test_bad_options_name_the_key(bad: dict[str, object], key: str) -> None:
    with pytest.raises(DriverOptionError) as caught:
        BeamGpioDriver.from_options("back_door", bad)
    assert caught.value.key == key


@pytest.fixture
def factory() -> Iterator[Any]:
    pins = mock.MockFactory()
    yield pins
    pins.reset()


def start(factory: Any, **extra: object) -> tuple[BeamGpioDriver, RecordingSink, Any, Any]:
    driver = BeamGpioDriver.from_options("back_door", {**OPTIONS, **extra})
    driver.pin_factory = factory
    a, b = factory.pin(17), factory.pin(27)
    sink = RecordingSink()
    driver.start(sink)
    deadline = time.monotonic() + 5
    while not driver.health()["connected"]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return driver, sink, a, b


def walk(first: Any, second: Any, step: float = 0.05) -> None:
    """Break first, break second, clear first, clear second (LOW = broken)."""
    for pin, low in ((first, True), (second, True), (first, False), (second, False)):
        pin.drive_low() if low else pin.drive_high()
        time.sleep(step)
    time.sleep(0.2)


def test_a_then_b_is_an_entry_and_b_then_a_an_exit(factory: Any) -> None:
    driver, sink, a, b = start(factory)
    try:
        walk(a, b)
        walk(b, a)
        sink.wait_for(lambda: len(sink.readings) == 2, 5, "two crossings")
        assert sink.readings == [DoorCount("back", 1, 0), DoorCount("back", 0, 1)]
        assert driver.health()["frames"] == 2
    finally:
        driver.stop()


def test_swap_direction(factory: Any) -> None:
    driver, sink, a, b = start(factory, swap_direction=True)
    try:
        walk(a, b)
        sink.wait_for(lambda: sink.readings == [DoorCount("back", 0, 1)], 5, "an exit")
    finally:
        driver.stop()


def test_glitches_and_ambiguous_crossings_are_bad_frames(factory: Any) -> None:
    driver, sink, a, b = start(factory)
    try:
        a.drive_low()
        a.drive_high()  # microseconds: a glitch
        time.sleep(0.3)
        a.drive_low()
        b.drive_low()  # both at once
        time.sleep(0.1)
        a.drive_high()
        b.drive_high()
        sink.wait_for(lambda: sorted(sink.bad) == ["ambiguous", "glitch"], 5, "two bad frames")
        assert sink.readings == [] and driver.health()["bad_frames"] == 2
    finally:
        driver.stop()


def test_someone_who_turns_back_times_out(factory: Any) -> None:
    driver, sink, a, _ = start(factory, timeout_s=0.3)
    try:
        a.drive_low()
        time.sleep(0.1)
        a.drive_high()
        sink.wait_for(lambda: sink.bad == ["timeout"], 5, "a timeout")
        assert driver.health()["timeouts"] == 1
    finally:
        driver.stop()


def test_missing_gpiozero_is_a_problem_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gpiozero", None)  # import gpiozero now raises ImportError
    driver = BeamGpioDriver.from_options("back_door", OPTIONS)
    sink = RecordingSink()
    driver.start(sink)
    try:
        sink.wait_for(lambda: len(sink.problems) == 1, 5, "a problem report")
        assert "pip install 'shopkeeper[gpio]'" in sink.problems[0] and not driver.health()["connected"]
    finally:
        driver.stop()


def test_nothing_is_emitted_after_stop(factory: Any) -> None:
    driver, sink, a, b = start(factory)
    walk(a, b)
    sink.wait_for(lambda: len(sink.readings) == 1, 5, "a crossing")
    driver.stop()
    before = sink.snapshot()
    walk(a, b)
    time.sleep(0.2)  # nothing to await: the claim is that nothing happens
    assert sink.snapshot() == before and not driver.health()["connected"]
