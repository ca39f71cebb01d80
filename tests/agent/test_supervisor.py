"""The supervisor restarts a driver whose thread died, with capped backoff, and leaves healthy ones alone."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping
from typing import Any, ClassVar

import pytest

from agent.driver_api import DoorCount, Sink
from agent.ops.supervisor import DriverSupervisor


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
