"""The driver contract: the Sink a driver writes to, the Driver protocol, health and option errors.

A driver validates its options without I/O (`from_options`), then `start(sink)` runs it in the
background and `stop()` ends it; after `stop()` returns nothing more reaches the sink. `start()`
never raises for a device problem: it reports through the sink and `health()` and keeps trying.
Drivers emit readings and problems through the sink and never touch SQLite, MQTT or the scheduler.
The agent stamps every reading on receipt, so drivers need no clock.

A driver that turns a device's cumulative counter into deltas keeps its baseline in the agent's
store (`state`, `save_state`, `load_state`): small text values of its own, local only, committed in
the same transaction as the readings they account for, so a restart counts each crossing once.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

from agent.driver_api.readings import Reading

# A driver's state is bookkeeping, not data: a few short values (a counter baseline), never blobs.
MAX_STATE_KEY = 128
MAX_STATE_VALUE = 1024
MAX_STATE_KEYS = 16  # per emit or save_state


def state_problem(state: Mapping[str, str]) -> str | None:
    """Why the store would refuse this driver state, or None."""
    if len(state) > MAX_STATE_KEYS:
        return f"{len(state)} state keys at once (at most {MAX_STATE_KEYS})"
    for key, value in state.items():
        if not isinstance(key, str) or not 0 < len(key) <= MAX_STATE_KEY:
            return f"state key {str(key)[:40]!r} is not text of 1 to {MAX_STATE_KEY} characters"
        if not isinstance(value, str) or len(value) > MAX_STATE_VALUE:
            return f"state {key[:40]!r} is not text of at most {MAX_STATE_VALUE} characters"
    return None


class Sink(Protocol):
    """Where a running driver sends what it saw."""

    def emit(self, reading: Reading, state: Mapping[str, str] | None = None) -> None:
        """Hand one reading to the agent; it is accepted once the agent's batch commits.

        `state` (key -> value, the driver's own, e.g. a counter's new baseline) is saved in the same
        transaction as the reading: after a crash both are stored or neither is.
        """

    def save_state(self, driver: str, state: Mapping[str, str]) -> None:
        """Save state that goes with no reading (a baseline taken at first sight), in emission order."""

    def load_state(self, driver: str, key: str) -> str | None:
        """The value last committed for `key` of this driver (everything emitted before is committed
        first), or None. Raises DriverError when the store cannot answer; the driver then retries."""

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
        self.problems: list[DriverOptionError] = [self]  # Options.parse puts every bad key of a table here
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
