"""The Modbus counter across agent restarts: its baseline is stored with its counts, so each crossing
counts once for life, a power cycle (boot_count up, counters at zero) counts only the new crossings.

The real driver polls firmware_sim.modbus_counter on a real pty and writes through the agent's real
ingest writer into SQLite.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.modbus_counter.driver import ModbusCounterDriver
from firmware_sim.modbus_counter import ModbusCounterSimulator
from tests.drivers.agent_run import agent_running, stored_state, stored_totals, wait_until

NAME = "side_door"
KEY = "counters:slave-1"


class Shop:
    """One counter on a pty and the agent's database; `truth` counts crossings since the baseline."""

    def __init__(self, tmp_path: Path) -> None:
        self.sim = ModbusCounterSimulator(tmp_path / "by-id" / "counter")
        with self.sim._lock:  # counting since power-on, long before the agent was installed
            self.sim.entries, self.sim.exits = 103, 95
        self.sim.start()
        self.db = tmp_path / "agent.db"
        self.truth = [0, 0]

    def driver(self) -> ModbusCounterDriver:
        # Parity "N": Linux refuses to set even parity again on a pty that was opened with it before
        # (tcsetattr EINVAL on the second open), a limit of ptys, not of RS-485 adapters.
        options = {"port": str(self.sim.device.link_path), "door": "side", "parity": "N", "poll_interval_s": 0.02}
        return ModbusCounterDriver.from_options(NAME, {**options, "response_timeout_s": 0.2})

    @property
    def agent(self):  # type: ignore[no-untyped-def]
        return agent_running(self.db, self.driver)

    def cross(self, direction: str) -> None:
        self.sim.cross(direction)
        self.truth[direction != "entry"] += 1

    def stored_baseline(self) -> str:
        registers = self.sim.registers()
        return f"{registers[0] << 16 | registers[1]},{registers[2] << 16 | registers[3]},{registers[6]}"

    def wait_counted(self) -> None:
        wait_until(lambda: stored_totals(self.db, NAME) == tuple(self.truth), f"the stored totals {self.truth}")
        wait_until(lambda: stored_state(self.db, NAME) == {KEY: self.stored_baseline()}, "the stored baseline")


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    shop = Shop(tmp_path)
    yield shop
    shop.sim.stop()


def test_ten_restarts_count_exactly_the_truth(shop: Shop, caplog: pytest.LogCaptureFixture) -> None:
    rng = random.Random(29)
    caplog.set_level(logging.INFO, logger="drivers.modbus_counter.driver")
    for run in range(11):  # the first run and ten restarts
        with shop.agent:
            if run == 0:  # first sight: the counters since power-on become the baseline, counted as nothing
                wait_until(lambda: stored_state(shop.db, NAME) == {KEY: "103,95,1"}, "the baseline")
            for _ in range(rng.randint(1, 10)):
                shop.cross(rng.choice(["entry", "exit"]))
            shop.wait_counted()
        for _ in range(rng.randint(0, 6)):  # counted by the device while the agent is down
            shop.cross(rng.choice(["entry", "exit"]))
    with shop.agent:
        shop.wait_counted()
    assert sum(shop.truth) > 40
    assert sum("no stored baseline" in r.getMessage() for r in caplog.records) == 1


def test_a_power_cycle_while_running_or_down_counts_only_new_crossings(shop: Shop) -> None:
    with shop.agent:
        wait_until(lambda: stored_state(shop.db, NAME) == {KEY: "103,95,1"}, "the baseline")
        for direction in ["entry"] * 4 + ["exit"]:
            shop.cross(direction)
        shop.wait_counted()
        shop.sim.power_cycle()
        shop.cross("exit")
        shop.wait_counted()
    shop.sim.power_cycle()  # while the agent is down; the device counts on from zero
    for direction in ["entry"] * 3:
        shop.cross(direction)
    with shop.agent:
        shop.wait_counted()
    assert shop.truth == [7, 2]
    assert stored_state(shop.db, NAME) == {KEY: "3,0,3"}
