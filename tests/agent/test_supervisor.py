"""The supervisor starts drivers and restarts those that cannot start or whose thread died, with capped backoff."""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from agent.config import load_config
from agent.demo.local_broker import LocalBroker
from agent.driver_api import DoorCount, Sink
from agent.ops.health import health_report
from agent.ops.runtime import Agent
from agent.ops.supervisor import DriverSupervisor
from tests.conftest import BASE_CONFIG, ManualClock
from tests.drivers.binds_in_start import BindsInStart
from tests.mqtt_watch import Subscriber


class CrashingDriver:
    """Emits once, then its thread dies on an exception (a driver bug)."""

    kind: ClassVar[str] = "crashing"

    def __init__(self) -> None:
        self.name = "crashy"
        self.starts = 0
        self._thread: threading.Thread | None = None
        self._stopped = False

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, Any]) -> CrashingDriver:
        return cls()

    def doors(self) -> list[str]:
        return ["front"]

    def start(self, sink: Sink) -> None:
        self.starts += 1
        self._stopped = False

        def run() -> None:
            sink.emit(DoorCount("front", 1, 0))
            raise RuntimeError("driver bug")

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        self._thread.join()

    def stop(self) -> None:
        self._stopped = True

    def alive(self) -> bool:
        return self._stopped or (self._thread is not None and self._thread.is_alive())

    def health(self) -> dict[str, Any]:
        return {"connected": False}


class Recorder:
    def __init__(self) -> None:
        self.readings: list[DoorCount] = []

    def emit(self, reading: DoorCount) -> None:  # type: ignore[override]
        self.readings.append(reading)

    def bad_frame(self, driver: str, reason: str) -> None: ...

    def problem(self, driver: str, message: str) -> None: ...


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the crash is the point
def test_dead_driver_is_restarted_with_capped_backoff() -> None:
    now = [0.0]
    supervisor = DriverSupervisor(max_backoff_s=4, monotonic=lambda: now[0])
    driver, sink = CrashingDriver(), Recorder()
    supervisor.start(driver, sink)  # type: ignore[arg-type]
    restarts_at = []
    for step in range(40):
        now[0] = step * 0.5
        if supervisor.check():
            restarts_at.append(now[0])
    assert driver.starts == 1 + len(restarts_at) and len(sink.readings) == driver.starts
    gaps = [b - a for a, b in itertools.pairwise(restarts_at)]
    assert gaps[:3] == [1.0, 2.0, 4.0] and max(gaps) == 4.0, gaps
    assert supervisor.health()["crashy"]["restarts"] == len(restarts_at)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_stopped_driver_is_not_restarted() -> None:
    supervisor = DriverSupervisor()
    driver = CrashingDriver()
    supervisor.start(driver, Recorder())  # type: ignore[arg-type]
    driver.stop()
    assert supervisor.check() == 0 and driver.starts == 1


class NeverStarts(CrashingDriver):
    """start() raises every time until `fixed` (a third-party driver that does its I/O in start())."""

    fixed = False

    def start(self, sink: Sink) -> None:
        self.starts += 1
        if not self.fixed:
            raise OSError(98, "Address already in use")
        super().start(sink)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # once fixed, it crashes
def test_a_driver_that_cannot_start_is_reported_and_retried_with_capped_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    supervisor = DriverSupervisor(max_backoff_s=4, monotonic=lambda: now[0])
    driver = NeverStarts()
    with caplog.at_level(logging.ERROR, "agent.ops.supervisor"):
        supervisor.start(driver, Recorder())  # type: ignore[arg-type]  # must not raise
    assert "driver crashy could not start: OSError: [Errno 98] Address already in use" in caplog.text
    health = supervisor.health()["crashy"]
    assert not health["running"] and not health["connected"] and "Address already in use" in health["last_error"]
    tries = []
    for step in range(30):
        now[0] = step * 0.5
        if supervisor.check():
            tries.append(now[0])
    gaps = [b - a for a, b in itertools.pairwise(tries)]
    assert gaps[:3] == [2.0, 4.0, 4.0] and max(gaps) == 4.0, gaps  # 1 s after the first failure, then doubling
    assert tries[0] == 1.0 and driver.starts == 1 + len(tries)
    driver.fixed = True
    now[0] += 4
    assert supervisor.check() == 1 and "last_error" not in supervisor.health()["crashy"]  # the start error is gone


def test_the_agent_runs_on_beside_a_driver_whose_port_is_taken(
    tmp_path: Path, broker: LocalBroker, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The real Agent: a driver that binds a taken port in start() is reported and retried; releases go on."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    path = tmp_path / "agent.toml"
    path.write_text(
        BASE_CONFIG.format(port=broker.port) + f'\n[drivers.till_knock]\nkind = "binds_in_start"\nport = {port}\n'
    )
    agent = Agent(load_config(path, drivers={"binds_in_start": BindsInStart}), clock)
    sub = Subscriber(broker.port, "coop/v1/+/+/t1/#")
    with caplog.at_level(logging.ERROR, "agent.ops.supervisor"):
        agent.start()  # before: OSError out of Agent.start, exit 1
    try:
        assert "driver till_knock could not start: OSError" in caplog.text and "retrying" in caplog.text
        driver = agent.supervisor.entries[0].driver
        health = agent.supervisor.health()["till_knock"]
        assert not health["running"] and "in use" in health["last_error"]
        assert "driver till_knock stopped" in health_report(agent)["reasons"]
        clock.advance(3600 + 121)
        agent._window_tick()  # the rest of the agent works: a window is released and published
        sub.wait_for(lambda: len(sub.summaries()) >= 1, 15, "a released window at the broker")
        taken.close()  # the port is free again: the supervisor's next retry starts the driver
        deadline = time.monotonic() + 15
        while not agent.supervisor.health()["till_knock"]["running"]:
            assert time.monotonic() < deadline, "the supervisor never retried the driver"
            time.sleep(0.1)
        assert isinstance(driver, BindsInStart) and driver.starts >= 2
        assert agent.supervisor.health()["till_knock"]["connected"]
    finally:
        taken.close()
        sub.close()
        agent.stop()
