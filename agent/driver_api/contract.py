"""The driver contract: the Sink a driver writes to, the Driver protocol, health and option errors.

A driver validates its options without I/O (`from_options`), then `start(sink)` runs it in the
background and `stop()` ends it; after `stop()` returns nothing more reaches the sink. `start()`
never raises for a device problem: it reports through the sink and `health()` and keeps trying.
Drivers emit readings and problems through the sink and never touch SQLite, MQTT or the scheduler.
The agent stamps every reading on receipt, so drivers need no clock.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

from agent.driver_api.readings import Reading


class Sink(Protocol):
    """Where a running driver sends what it saw."""

    def emit(self, reading: Reading) -> None:
        """Hand one reading to the agent; it is accepted once the agent's batch commits."""

    def bad_frame(self, driver: str, reason: str) -> None:
        """Count a corrupt or truncated frame that was skipped."""

    def problem(self, driver: str, message: str) -> None:
        """Report a device problem (unplugged, timeout); the driver keeps trying."""

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything emitted so far is committed (durable); False on timeout.

        A webhook answers 200 only after this returns True, so an acknowledged sale is durable.
        """


class DriverOptionError(ValueError):
    """An option of one driver is wrong; the agent adds the file name and key prefix."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        self.key, self.problem, self.fix = key, problem, fix
        super().__init__(f"{key}: {problem}; fix: {fix}")


@dataclasses.dataclass(slots=True)
class DriverHealth:
    """What `shopkeeper status` and /metrics show for one driver."""

    connected: bool = False
    frames: int = 0
    bad_frames: int = 0
    reconnects: int = 0
    last_error: str = ""
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False, compare=False)

    def snapshot(self) -> dict[str, Any]:
        """A plain dict copy, safe to read from another thread."""
        with self.lock:
            return {
                "connected": self.connected,
                "frames": self.frames,
                "bad_frames": self.bad_frames,
                "reconnects": self.reconnects,
                "last_error": self.last_error,
            }


class Driver(Protocol):
    """What every driver class provides (see docs/writing-a-driver.md)."""

    kind: ClassVar[str]
    name: str  # the instance's name: the [drivers.<name>] table

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, Any]) -> Driver:
        """Validate options without any I/O; raise DriverOptionError on the first bad key."""

    @classmethod
    def sample_config(cls) -> str:
        """The driver's commented sample.toml text."""

    def doors(self) -> list[str]:
        """The public door names this instance reports on (part of the released key set)."""

    def start(self, sink: Sink) -> None:
        """Start reading in the background; a device that cannot be reached is reported, never raised."""

    def stop(self) -> None:
        """Stop; once this returns the driver emits nothing more."""

    def alive(self) -> bool:
        """False once the background work has ended without stop() (the supervisor then restarts it)."""

    def health(self) -> dict[str, Any]:
        """A snapshot of the driver's health counters."""
