"""The Terabee driver over real ptys from firmware_sim: options, deltas, faults, reconnects, stop."""

from __future__ import annotations

import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.driver_api import DoorCount, DriverOptionError, kit
from drivers.terabee.driver import TerabeeDriver
from firmware_sim.pty_device import PtyDevice
from firmware_sim.terabee import BPTD_MODE_COMMAND, RESET_COUNTERS_COMMAND, TerabeeCounters

README = Path(__file__).parents[3] / "drivers" / "terabee" / "README.md"


class RecordingSink(kit.RecordingSink):
    """The kit's sink (it keeps driver state too), with this file's short waits and door totals."""

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0, what: str = "the driver") -> None:
        super().wait_for(predicate, timeout, what)

    def totals(self) -> tuple[int, int]:
        readings = [r for r in self.snapshot()[0] if isinstance(r, DoorCount)]
        return sum(r.entries for r in readings), sum(r.exits for r in readings)


def poll(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def options(**extra: object) -> dict[str, object]:
    return {"port": "/dev/serial/by-id/usb-x", "door": "front", **extra}


@pytest.mark.parametrize(
    ("bad", "key"),
    [
        ({"door": "front"}, "port"),
        ({"port": "", "door": "front"}, "port"),
        ({"port": "/dev/x"}, "door"),
        (options(door="Front Door"), "door"),
        (options(baudrate="fast"), "baudrate"),
        (options(baudrate=True), "baudrate"),
        (options(swap_direction="yes"), "swap_direction"),
        (options(frame_length=12), "frame_length"),
        (options(reset_counters_on_start=1), "reset_counters_on_start"),
        (options(colour="blue"), "colour"),
    ],
)
def test_bad_options_name_the_key(bad: dict[str, object], key: str) -> None:
    with pytest.raises(DriverOptionError) as caught:
        TerabeeDriver.from_options("front_door", bad)
    assert caught.value.key == key
    assert str(caught.value).startswith(f"{key}: ")


def test_sample_config_validates_and_is_in_the_readme() -> None:
    sample = TerabeeDriver.sample_config()
    table = tomllib.loads(sample)["drivers"]["front_door"]
    driver = TerabeeDriver.from_options("front_door", table)
    assert table["kind"] == TerabeeDriver.kind
    assert driver.doors() == ["front"]
    assert sample in README.read_text()


@pytest.fixture
def device(tmp_path: Path) -> Iterator[PtyDevice]:
    with PtyDevice(tmp_path / "by-id" / "usb-Terabee_Evo-if00") as pty:
        yield pty


def start_driver(device: PtyDevice, **extra: object) -> tuple[TerabeeDriver, RecordingSink]:
    driver = TerabeeDriver.from_options("front_door", {"port": str(device.link_path), "door": "front", **extra})
    driver.backoff_initial_s, driver.backoff_max_s = 0.02, 0.2
    sink = RecordingSink()
    driver.start(sink)
    return driver, sink


def wait_for_commands(device: PtyDevice, expected: bytes, seen: bytearray) -> None:
    def arrived() -> bool:
        seen.extend(device.read_available())
        return expected in seen

    poll(arrived)


def test_driver_sends_bptd_mode_then_reset_on_first_connect(device: PtyDevice) -> None:
    driver, _ = start_driver(device)
    try:
        seen = bytearray()
        wait_for_commands(device, BPTD_MODE_COMMAND + RESET_COUNTERS_COMMAND, seen)
        assert seen.startswith(BPTD_MODE_COMMAND)
    finally:
        driver.stop()


def test_driver_emits_deltas_of_cumulative_counters(device: PtyDevice) -> None:
    driver, sink = start_driver(device)
    try:
        wait_for_commands(device, RESET_COUNTERS_COMMAND, bytearray())
        counters = TerabeeCounters()
        for direction in ["in", "in", "out", "in", "out", "out"]:
            device.write(counters.cross(direction))
        sink.wait_for(lambda: sink.totals() == (3, 3))
        assert all(
            r.door == "front" and (r.entries, r.exits) in {(1, 0), (0, 1), (2, 0), (1, 1), (0, 2)}
            for r in sink.readings
        )
        assert driver.health()["frames"] == 6 and driver.health()["connected"]
    finally:
        driver.stop()


def test_swap_direction_turns_in_into_exits(device: PtyDevice) -> None:
    driver, sink = start_driver(device, swap_direction=True)
    try:
        wait_for_commands(device, RESET_COUNTERS_COMMAND, bytearray())
        device.write(TerabeeCounters(sensor_id=9).cross("in"))
        sink.wait_for(lambda: sink.totals() == (0, 1))
    finally:
        driver.stop()


def test_corrupt_frames_are_counted_while_reading_continues(device: PtyDevice) -> None:
    driver, sink = start_driver(device)
    try:
        wait_for_commands(device, RESET_COUNTERS_COMMAND, bytearray())
        counters = TerabeeCounters()
        first = counters.cross("in")
        device.write(first)
        sink.wait_for(lambda: sink.totals() == (1, 0))
        second = counters.cross("in")
        device.write(b"\x01\x02\x03" + second[:-1] + bytes([second[-1] ^ 0xFF]) + second[:5] + second)
        sink.wait_for(lambda: sink.totals() == (2, 0) and len(sink.bad) == 3)
        assert sorted(sink.bad) == ["crc", "garbage", "truncated"]
        assert driver.health()["bad_frames"] == 3
    finally:
        driver.stop()


def test_unplug_and_replug_reconnects_and_loses_no_crossing(device: PtyDevice) -> None:
    driver, sink = start_driver(device)
    try:
        wait_for_commands(device, RESET_COUNTERS_COMMAND, bytearray())
        counters = TerabeeCounters()
        device.write(counters.cross("in"))
        sink.wait_for(lambda: sink.totals() == (1, 0))

        device.unplug()
        poll(lambda: not driver.health()["connected"])
        sink.wait_for(lambda: len(sink.problems) == 1)
        for direction in ["in", "in", "out"]:  # counted by the device while its frames go nowhere
            device.write(counters.cross(direction))
        device.replug()

        seen = bytearray()
        wait_for_commands(device, BPTD_MODE_COMMAND, seen)
        assert RESET_COUNTERS_COMMAND not in seen  # a reset now would lose the crossings above
        poll(lambda: driver.health()["reconnects"] == 1)  # counted once the connect (which sends the mode) returns
        device.write(counters.cross("out"))
        sink.wait_for(lambda: sink.totals() == (3, 2))
        assert driver.health()["connected"]
    finally:
        driver.stop()


def test_device_power_cycle_counts_from_zero_again(device: PtyDevice) -> None:
    driver, sink = start_driver(device)
    try:
        wait_for_commands(device, RESET_COUNTERS_COMMAND, bytearray())
        counters = TerabeeCounters()
        for _ in range(5):
            device.write(counters.cross("in"))
        sink.wait_for(lambda: sink.totals() == (5, 0))
        counters.power_cycle()
        device.write(counters.cross("in"))
        sink.wait_for(lambda: sink.totals() == (6, 0))
        assert driver.deltas.resets == 1
    finally:
        driver.stop()


def test_driver_waits_for_a_missing_port_and_connects_when_it_appears(tmp_path: Path) -> None:
    link = tmp_path / "later"
    driver = TerabeeDriver.from_options("front_door", {"port": str(link), "door": "front"})
    driver.backoff_initial_s, driver.backoff_max_s = 0.02, 0.1
    sink = RecordingSink()
    driver.start(sink)
    try:
        with PtyDevice(link) as pty:
            wait_for_commands(pty, BPTD_MODE_COMMAND, bytearray())
            pty.write(TerabeeCounters().cross("in"))
            sink.wait_for(lambda: sink.totals() == (1, 0))
    finally:
        driver.stop()


def test_nothing_is_emitted_after_stop(device: PtyDevice) -> None:
    driver, sink = start_driver(device)
    wait_for_commands(device, RESET_COUNTERS_COMMAND, bytearray())
    counters = TerabeeCounters()
    device.write(counters.cross("in"))
    sink.wait_for(lambda: sink.totals() == (1, 0))
    driver.stop()
    before = (list(sink.readings), list(sink.bad), list(sink.problems))
    for _ in range(20):
        device.write(counters.cross("in") + b"junk")
    device.unplug()
    time.sleep(0.3)  # nothing to await: the claim is that nothing happens
    assert (sink.readings, sink.bad, sink.problems) == before
    assert not driver.health()["connected"]
