"""The Modbus counter driver over a real pty with firmware_sim.modbus_counter: polls, deltas, faults, reconnects."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.driver_api import DoorCount, DriverOptionError
from agent.driver_api.kit import RecordingSink
from drivers.modbus_counter.driver import ModbusCounterDriver
from firmware_sim.modbus_counter import ModbusCounterSimulator


def poll(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def totals(sink: RecordingSink) -> tuple[int, int]:
    readings = [r for r in sink.snapshot()[0] if isinstance(r, DoorCount)]
    return sum(r.entries for r in readings), sum(r.exits for r in readings)


@pytest.mark.parametrize(
    ("bad", "key"),
    [
        ({"door": "side"}, "port"),
        ({"port": "/dev/x"}, "door"),
        ({"port": "/dev/x", "door": "side", "slave": 0}, "slave"),
        ({"port": "/dev/x", "door": "side", "slave": 248}, "slave"),
        ({"port": "/dev/x", "door": "side", "parity": "X"}, "parity"),
        ({"port": "/dev/x", "door": "side", "poll_interval_s": 0}, "poll_interval_s"),
        ({"port": "/dev/x", "door": "side", "response_timeout_s": "1"}, "response_timeout_s"),
        ({"port": "/dev/x", "door": "side", "swap_direction": 1}, "swap_direction"),
    ],
)
def test_bad_options_name_the_key(bad: dict[str, object], key: str) -> None:
    with pytest.raises(DriverOptionError) as caught:
        ModbusCounterDriver.from_options("side_door", bad)
    assert caught.value.key == key


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[ModbusCounterSimulator]:
    simulator = ModbusCounterSimulator(tmp_path / "by-id" / "counter").start()
    yield simulator
    simulator.stop()


def start(sim: ModbusCounterSimulator, **extra: object) -> tuple[ModbusCounterDriver, RecordingSink]:
    options = {"port": str(sim.device.link_path), "door": "side", "poll_interval_s": 0.05, "response_timeout_s": 0.2}
    driver = ModbusCounterDriver.from_options("side_door", {**options, **extra})
    driver.backoff_initial_s, driver.backoff_max_s = 0.02, 0.2
    sink = RecordingSink()
    driver.start(sink)
    poll(lambda: driver.deltas.last_entries is not None)  # the baseline is read
    return driver, sink


def test_polls_fc03_and_emits_deltas(sim: ModbusCounterSimulator) -> None:
    sim.cross("entry")  # before the baseline: not reported
    driver, sink = start(sim)
    try:
        for direction in ["entry", "entry", "exit", "entry", "exit"]:
            sim.cross(direction)
        sink.wait_for(lambda: totals(sink) == (3, 2), 5, "the crossings")
        health = driver.health()
        assert health["firmware"] == "1.3" and health["status"] == 1 and health["connected"]
        assert sim.requests >= 2
    finally:
        driver.stop()


def test_seeded_crossings_reach_the_driver_exactly(tmp_path: Path) -> None:
    from firmware_sim.modbus_counter import seeded_crossings

    crossings = [(t / 20 + 0.3, d) for t, d in seeded_crossings(seed=5, seconds=20, rate_per_s=2)]
    sim = ModbusCounterSimulator(tmp_path / "c", crossings).start()
    try:
        driver, sink = start(sim)
        try:
            poll(lambda: sim.truth["entries"] + sim.truth["exits"] == len(crossings))
            sink.wait_for(lambda: totals(sink) == (sim.truth["entries"], sim.truth["exits"]), 5, "the truth")
        finally:
            driver.stop()
    finally:
        sim.stop()


def test_power_cycle_counts_from_zero_again(sim: ModbusCounterSimulator) -> None:
    driver, sink = start(sim)
    try:
        sim.cross("entry")
        sink.wait_for(lambda: totals(sink) == (1, 0), 5, "one entry")
        sim.power_cycle()
        sim.cross("exit")
        sink.wait_for(lambda: totals(sink) == (1, 1), 5, "one exit after the power cycle")
        assert driver.deltas.resets == 1
    finally:
        driver.stop()


def test_exception_replies_are_reported_once(sim: ModbusCounterSimulator) -> None:
    driver, sink = start(sim)
    try:
        sim.status = 0
        original = sim.answer
        # Answer every poll as if it had asked for 32 registers: exception 02, illegal data address.
        sim.answer = lambda request: original(bytes.fromhex("01 03 00 00 00 20 44 12"))  # type: ignore[method-assign]
        poll(lambda: driver.health()["exceptions"] >= 3)
        assert sum("illegal data address" in p for p in sink.problems) == 1
        sim.answer = original  # type: ignore[method-assign]
        sim.cross("entry")
        sink.wait_for(lambda: totals(sink) == (1, 0), 5, "counting again")
    finally:
        driver.stop()


def test_a_silent_slave_times_out_and_shows_disconnected(sim: ModbusCounterSimulator) -> None:
    driver, sink = start(sim)
    try:
        sim.silent = True
        sink.wait_for(lambda: any("does not reply" in p for p in sink.problems), 5, "the timeout report")
        assert not driver.health()["connected"] and driver.health()["timeouts"] >= 3
        sim.silent = False
        poll(lambda: driver.health()["connected"])
    finally:
        driver.stop()


def test_another_slave_address_gets_no_reply(sim: ModbusCounterSimulator) -> None:
    driver, _sink = start(sim)
    driver.stop()
    other = ModbusCounterDriver.from_options(
        "x",
        {
            "port": str(sim.device.link_path),
            "door": "side",
            "slave": 7,
            "response_timeout_s": 0.05,
            "poll_interval_s": 0.05,
        },
    )
    other_sink = RecordingSink()
    other.start(other_sink)
    try:
        other_sink.wait_for(lambda: len(other_sink.problems) == 1, 5, "the timeout report")
    finally:
        other.stop()


def test_line_noise_is_counted_and_the_reply_still_read(sim: ModbusCounterSimulator) -> None:
    driver, sink = start(sim)
    try:
        sim.inject_garbage(b"\x00\xff\x55")
        sim.cross("exit")
        sink.wait_for(lambda: totals(sink) == (0, 1) and sink.bad == ["garbage"], 5, "the reply after noise")
    finally:
        driver.stop()


def test_unplug_keeps_the_baseline_and_loses_no_crossing(sim: ModbusCounterSimulator) -> None:
    driver, sink = start(sim)
    try:
        sim.cross("entry")
        sink.wait_for(lambda: totals(sink) == (1, 0), 5, "one entry")
        sim.unplug()
        poll(lambda: not driver.health()["connected"])
        for direction in ("entry", "exit", "exit"):
            sim.cross(direction)  # counted while the adapter is out
        sim.replug()
        sink.wait_for(lambda: totals(sink) == (2, 2), 5, "the crossings from the outage")
        assert driver.health()["reconnects"] == 1 and len(sink.problems) == 1
    finally:
        driver.stop()
