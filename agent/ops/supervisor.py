"""Restart drivers whose background work died, with capped exponential backoff.

A driver that reconnects by itself never needs this; it is for a driver whose thread ended on an
unexpected exception (a bug, a device that answers nonsense). Drivers say whether they still run
through `alive()`; a driver without that method is trusted to run.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from agent.driver_api import Driver, Sink

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Supervised:
    driver: Driver
    sink: Sink
    restarts: int = 0
    next_try: float = 0.0
    backoff_s: float = 1.0


class DriverSupervisor:
    def __init__(self, max_backoff_s: float = 60.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.entries: list[Supervised] = []
        self.max_backoff_s = max_backoff_s
        self.monotonic = monotonic

    def start(self, driver: Driver, sink: Sink) -> None:
        self.entries.append(Supervised(driver, sink))
        driver.start(sink)

    def check(self) -> int:
        """Restart dead drivers that are due; returns how many were restarted."""
        restarted = 0
        now = self.monotonic()
        for entry in self.entries:
            alive = getattr(entry.driver, "alive", None)
            if alive is None or alive():
                entry.backoff_s = 1.0
                continue
            if now < entry.next_try:
                continue
            name = getattr(entry.driver, "name", type(entry.driver).__name__)
            log.error("driver %s stopped unexpectedly; restarting it (restart %d)", name, entry.restarts + 1)
            try:
                entry.driver.stop()
                entry.driver.start(entry.sink)
            except Exception:
                log.exception("driver %s failed to restart", name)
            entry.restarts += 1
            restarted += 1
            entry.next_try = now + entry.backoff_s
            entry.backoff_s = min(entry.backoff_s * 2, self.max_backoff_s)
        return restarted

    def stop_all(self) -> None:
        for entry in self.entries:
            entry.driver.stop()

    def health(self) -> dict[str, dict[str, Any]]:
        out = {}
        for entry in self.entries:
            name = str(getattr(entry.driver, "name", type(entry.driver).__name__))
            alive = getattr(entry.driver, "alive", None)
            out[name] = {
                **entry.driver.health(),
                "restarts": entry.restarts,
                "running": True if alive is None else bool(alive()),
            }
        return out
