"""The LD2410 driver over a real pty with firmware_sim.ld2410: handshake, presence, hold, faults, reconnects."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.driver_api import DriverOptionError, PresenceChange
from agent.driver_api.kit import RecordingSink
from drivers.ld2410.driver import LD2410Driver
from firmware_sim.ld2410 import LD2410Simulator, encode_report
from firmware_sim.pty_device import PtyDevice


def poll(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.parametrize(
    ("bad", "key"),
    [
        ({"zone": "till"}, "port"),
        ({"port": "/dev/x"}, "zone"),
        ({"port": "/dev/x", "zone": "Till Zone"}, "zone"),
        ({"port": "/dev/x", "zone": "till", "hold_s": -1}, "hold_s"),
        ({"port": "/dev/x", "zone": "till", "hold_s": "2s"}, "hold_s"),
        ({"port": "/dev/x", "zone": "till", "engineering_mode": "on"}, "engineering_mode"),
        ({"port": "/dev/x", "zone": "till", "baudrate": 0}, "baudrate"),
        ({"port": "/dev/x", "zone": "till", "door": "front"}, "door"),
    ],
)
def test_bad_options_name_the_key(bad: dict[str, object], key: str) -> None:
    with pytest.raises(DriverOptionError) as caught:
        LD2410Driver.from_options("till_radar", bad)
    assert caught.value.key == key


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[LD2410Simulator]:
    simulator = LD2410Simulator(tmp_path / "by-id" / "radar", [(0.0, 0)], report_hz=20).start()
    yield simulator
    simulator.stop()


def start(link: Path, **extra: object) -> tuple[LD2410Driver, RecordingSink]:
    driver = LD2410Driver.from_options("till_radar", {"port": str(link), "zone": "till", "hold_s": 0, **extra})
    driver.backoff_initial_s, driver.backoff_max_s = 0.02, 0.2
    sink = RecordingSink()
    driver.start(sink)
    return driver, sink


def test_handshake_is_sent_in_order_and_reads_the_firmware(sim: LD2410Simulator) -> None:
    driver, _ = start(sim.device.link_path)
    try:
        poll(lambda: sim.commands == [0x00FF, 0x00A0, 0x0063, 0x00FE])
        poll(lambda: driver.health()["firmware"] == "V1.02.22062416")
        assert not sim.config_mode and not sim.engineering
    finally:
        driver.stop()


def test_engineering_mode_is_switched_on_and_reports_still_give_presence(sim: LD2410Simulator) -> None:
    driver, sink = start(sim.device.link_path, engineering_mode=True)
    try:
        poll(lambda: sim.engineering and not sim.config_mode)
        sim.set_target(3)
        sink.wait_for(lambda: PresenceChange("till", True) in sink.readings, 5, "presence")
    finally:
        driver.stop()


def test_presence_changes_follow_the_target_state(sim: LD2410Simulator) -> None:
    driver, sink = start(sim.device.link_path)
    try:
        sink.wait_for(lambda: sink.readings == [PresenceChange("till", False)], 5, "the first state")
        for target in (1, 2, 0, 3):
            sim.set_target(target)
            time.sleep(0.15)
        sink.wait_for(lambda: len(sink.readings) == 4, 5, "four changes")
        assert [r.present for r in sink.readings] == [False, True, False, True]  # type: ignore[union-attr]
        assert driver.health()["present"] is True
    finally:
        driver.stop()


def test_hold_time_delays_absence(sim: LD2410Simulator) -> None:
    driver, sink = start(sim.device.link_path, hold_s=0.6)
    try:
        sim.set_target(2)
        sink.wait_for(lambda: PresenceChange("till", True) in sink.readings, 5, "presence")
        cleared = time.monotonic()
        sim.set_target(0)
        sink.wait_for(lambda: sink.readings[-1] == PresenceChange("till", False), 5, "absence")
        assert time.monotonic() - cleared >= 0.6
    finally:
        driver.stop()


def test_a_device_that_never_acks_is_reported_and_reports_are_still_read(tmp_path: Path) -> None:
    with PtyDevice(tmp_path / "mute") as pty:
        driver, sink = start(pty.link_path)
        try:
            sink.wait_for(lambda: any("no ACK for command 0x00FF" in p for p in sink.problems), 5, "the ACK timeout")
            pty.write(encode_report(1))
            sink.wait_for(lambda: PresenceChange("till", True) in sink.readings, 5, "presence")
        finally:
            driver.stop()


def test_garbage_is_counted_and_reading_continues(sim: LD2410Simulator) -> None:
    driver, sink = start(sim.device.link_path)
    try:
        sink.wait_for(lambda: len(sink.readings) == 1, 5, "the first state")
        sim.inject_garbage(b"\x00\x01 line noise \x02")
        sink.wait_for(lambda: "garbage" in sink.bad, 5, "a garbage report")
        sim.set_target(1)
        sink.wait_for(lambda: PresenceChange("till", True) in sink.readings, 5, "presence")
        assert driver.health()["bad_frames"] >= 1
    finally:
        driver.stop()


def test_unplug_and_replug_reconnects_and_repeats_the_handshake(sim: LD2410Simulator) -> None:
    driver, sink = start(sim.device.link_path, engineering_mode=True)
    try:
        poll(lambda: sim.engineering)
        sim.unplug()
        poll(lambda: not driver.health()["connected"])
        sink.wait_for(lambda: len(sink.problems) == 1, 5, "one outage report")
        sim.replug()  # a power cycle: engineering mode is lost
        poll(lambda: sim.commands.count(0x00FF) == 2 and sim.engineering)
        assert driver.health()["reconnects"] == 1 and driver.health()["connected"]
    finally:
        driver.stop()
