"""Start drivers, and restart those that cannot start or whose background work died, with capped backoff.

A driver that reconnects by itself never needs this; it is for a driver whose `start()` raised (a
third-party driver that binds a taken port in `start()`) or whose thread ended on an unexpected
exception (a bug, a device that answers nonsense). Either way the rest of the agent runs on: the
failure is logged with its reason, shown in `health()` (`running` false, `last_error`), and retried.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from agent.driver_api import Driver, Sink
from agent.errors import DriverError

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Supervised:
    driver: Driver
    sink: Sink
    restarts: int = 0
    next_try: float = 0.0
    backoff_s: float = 1.0
    start_error: str = ""  # why the last start() failed; "" once it started


def _name(driver: Driver) -> str:
    return str(getattr(driver, "name", type(driver).__name__))


def _start(driver: Driver, sink: Sink) -> None:
    """driver.start(sink), with any failure turned into one DriverError naming the driver."""
    try:
        driver.start(sink)
    except Exception as exc:
        raise DriverError(f"driver {_name(driver)} could not start: {type(exc).__name__}: {exc}") from exc


class DriverSupervisor:
    def __init__(self, max_backoff_s: float = 60.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.entries: list[Supervised] = []
        self.max_backoff_s = max_backoff_s
        self.monotonic = monotonic

    def start(self, driver: Driver, sink: Sink) -> None:
        """Start a driver; if it cannot start, log why and retry it from check()."""
        entry = Supervised(driver, sink)
        self.entries.append(entry)
        try:
            _start(driver, sink)
        except DriverError as exc:
            self._failed(entry, exc, self.monotonic())

    def _failed(self, entry: Supervised, exc: DriverError, now: float) -> None:
        entry.start_error = str(exc)
        entry.next_try = now + entry.backoff_s
        log.error("%s; retrying in %g s", exc, entry.backoff_s)
        entry.backoff_s = min(entry.backoff_s * 2, self.max_backoff_s)

    def _alive(self, entry: Supervised) -> bool:
        if entry.start_error:
            return False
        alive = getattr(entry.driver, "alive", None)  # drivers written before alive() joined the contract
        return alive is None or bool(alive())

    def check(self) -> int:
        """Restart dead or unstarted drivers that are due; returns how many were (re)started."""
        restarted = 0
        now = self.monotonic()
        for entry in self.entries:
            if self._alive(entry):
                entry.backoff_s = 1.0
                continue
            if now < entry.next_try:
                continue
            if not entry.start_error:
                log.error("driver %s stopped unexpectedly; restarting it (restart %d)", _name(entry.driver),
                          entry.restarts + 1)  # fmt: skip
            entry.restarts += 1
            restarted += 1
            try:
                entry.driver.stop()
            except Exception:
                log.exception("driver %s failed to stop before its restart", _name(entry.driver))
            try:
                _start(entry.driver, entry.sink)
            except DriverError as exc:
                self._failed(entry, exc, now)
                continue
            if entry.start_error:
                log.info("driver %s started after %d attempts", _name(entry.driver), entry.restarts + 1)
            entry.start_error = ""
            entry.next_try = now + entry.backoff_s
            entry.backoff_s = min(entry.backoff_s * 2, self.max_backoff_s)
        return restarted

    def stop_all(self) -> None:
        for entry in self.entries:
            try:
                entry.driver.stop()
            except Exception:
                log.exception("driver %s failed to stop", _name(entry.driver))

    def health(self) -> dict[str, dict[str, Any]]:
        out = {}
        for entry in self.entries:
            try:
                health = dict(entry.driver.health())
            except Exception as exc:  # a broken health() must not break /health for the others
                health = {"connected": False, "last_error": f"health() failed: {exc}"}
            if entry.start_error:
                health.update(connected=False, last_error=entry.start_error)
            out[_name(entry.driver)] = {**health, "restarts": entry.restarts, "running": self._alive(entry)}
        return out
