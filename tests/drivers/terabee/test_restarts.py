"""Terabee without a counter reset, across agent restarts: each crossing is counted once for life.

The real driver reads the simulated device (firmware_sim.terabee) on a real pty and writes through the
agent's real ingest writer into SQLite; its baseline lives in the same transactions as the counts.
Crossings made while the agent is down send frames nobody reads; the next frame carries them.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.terabee.driver import TerabeeDriver
from firmware_sim.pty_device import PtyDevice
from firmware_sim.terabee import BPTD_MODE_COMMAND, RESET_COUNTERS_COMMAND, TerabeeCounters
from tests.drivers.agent_run import agent_running, stored_state, stored_totals, wait_until

NAME = "front_door"
FIRST_SIGHT = "no stored baseline"


class Shop:
    """One Terabee on a pty (its counters are the ground truth) and the agent's database."""

    def __init__(self, tmp_path: Path, counters: TerabeeCounters) -> None:
        self.device = PtyDevice(tmp_path / "by-id" / "usb-Terabee_Evo-if00")
        self.db = tmp_path / "agent.db"
        self.counters = counters
        self.truth = [0, 0]  # crossings since the baseline the agent took

    def driver(self) -> TerabeeDriver:
        options = {"port": str(self.device.link_path), "door": "front", "reset_counters_on_start": False}
        return TerabeeDriver.from_options(NAME, options)

    @property
    def agent(self):  # type: ignore[no-untyped-def]
        return agent_running(self.db, self.driver)

    def wait_connected(self) -> None:
        seen = bytearray()

        def setup_sent() -> bool:
            seen.extend(self.device.read_available())
            return BPTD_MODE_COMMAND in seen

        wait_until(setup_sent, "the driver's setup command")
        assert RESET_COUNTERS_COMMAND not in seen

    def cross(self, direction: str, *, heard: bool = True) -> None:
        frame = self.counters.cross(direction)
        self.truth[direction != "in"] += 1
        if heard:
            self.device.write(frame)

    def wait_counted(self) -> None:
        wait_until(lambda: stored_totals(self.db, NAME) == tuple(self.truth), f"the stored totals {self.truth}")


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    # Counting since power-on, long before the agent was installed: 103 in, 95 out.
    shop = Shop(tmp_path, TerabeeCounters(sensor_id=0x5E000001, count_in=103, count_out=95, people=8))
    yield shop
    shop.device.close()


def take_baseline(shop: Shop) -> None:
    """The first run sees the sensor for the first time: its first frame is the baseline, counted as nothing."""
    shop.wait_connected()
    shop.counters.cross("in")
    shop.device.write(shop.counters.frame())
    wait_until(lambda: stored_state(shop.db, NAME) == {"counters:5e000001": "104,95"}, "the baseline")


def test_ten_restarts_without_reset_count_exactly_the_truth(shop: Shop, caplog: pytest.LogCaptureFixture) -> None:
    rng = random.Random(13)
    caplog.set_level(logging.INFO, logger="drivers.terabee.driver")
    for run in range(11):  # the first run and ten restarts
        with shop.agent:
            if run == 0:
                take_baseline(shop)
            else:
                shop.wait_connected()
            for _ in range(rng.randint(1, 12)):
                shop.cross(rng.choice(["in", "out"]))
            shop.wait_counted()
        for _ in range(rng.randint(0, 6)):  # while the agent is down the device keeps counting
            shop.cross(rng.choice(["in", "out"]), heard=False)
    with shop.agent:
        shop.wait_connected()
        shop.cross("in")
        shop.wait_counted()
    assert sum(shop.truth) > 40  # the runs had real traffic to get wrong
    assert stored_state(shop.db, NAME) == {"counters:5e000001": f"{shop.counters.count_in},{shop.counters.count_out}"}
    assert sum(FIRST_SIGHT in r.getMessage() for r in caplog.records) == 1


def test_a_power_cycle_while_running_or_down_counts_only_new_crossings(shop: Shop) -> None:
    with shop.agent:
        take_baseline(shop)
        for direction in ["in"] * 5 + ["out"] * 2:
            shop.cross(direction)
        shop.wait_counted()
        shop.counters.power_cycle()  # back to zero while the agent runs
        for direction in ["in", "in", "out"]:
            shop.cross(direction)
        shop.wait_counted()
    with shop.agent:  # a restart after the power cycle: the stored baseline is the post-cycle one
        shop.wait_connected()
        shop.cross("out")
        shop.wait_counted()
    shop.counters.power_cycle()  # back to zero while the agent is down
    shop.cross("in", heard=False)
    with shop.agent:
        shop.wait_connected()
        shop.cross("in")  # 2 in, 0 out: below the stored baseline, so a reset, counted in full
        shop.wait_counted()
    assert shop.truth == [5 + 2 + 2, 2 + 1 + 1]
    assert stored_state(shop.db, NAME) == {"counters:5e000001": "2,0"}


def test_a_u16_wrap_while_the_agent_is_down_is_counted_once(tmp_path: Path) -> None:
    shop = Shop(tmp_path, TerabeeCounters(sensor_id=0x5E000001, count_in=65530, count_out=7))
    try:
        with shop.agent:
            shop.wait_connected()
            shop.device.write(shop.counters.cross("in"))  # the baseline: 65531 in
            wait_until(lambda: stored_state(shop.db, NAME) == {"counters:5e000001": "65531,7"}, "the baseline")
        for _ in range(10):
            shop.cross("in", heard=False)  # 65541 wraps to 5
        with shop.agent:
            shop.wait_connected()
            shop.cross("in")
            shop.wait_counted()
        assert shop.truth == [11, 0] and shop.counters.count_in == 6
    finally:
        shop.device.close()


def test_a_reset_on_start_counts_from_zero_whatever_baseline_was_stored(shop: Shop) -> None:
    with shop.agent:
        take_baseline(shop)
        for _ in range(3):
            shop.cross("in")
        shop.wait_counted()
    for _ in range(2):
        shop.counters.cross("in")  # counted by the device while the agent is down, then lost to the reset
    options = {"port": str(shop.device.link_path), "door": "front", "reset_counters_on_start": True}
    with agent_running(shop.db, lambda: TerabeeDriver.from_options(NAME, options)):
        seen = bytearray()

        def reset_sent() -> bool:
            seen.extend(shop.device.read_available())
            return RESET_COUNTERS_COMMAND in seen

        wait_until(reset_sent, "the reset command")
        shop.counters.power_cycle()  # what the device does on that command
        shop.cross("in")
        wait_until(lambda: stored_totals(shop.db, NAME) == (4, 0), "three counted before, one since the reset")
        wait_until(lambda: stored_state(shop.db, NAME) == {"counters:5e000001": "1,0"}, "the baseline after reset")
