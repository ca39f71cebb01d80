"""The driver contract: the only part of `agent` a driver imports.

A driver validates its options without I/O (`from_options`), then `start(sink)` runs it in the
background and `stop()` ends it; after `stop()` returns nothing more reaches the sink. Drivers emit
readings and problems through the sink and never touch SQLite, MQTT or the scheduler. The agent
stamps every reading on receipt (boot id, monotonic ns, wall time, clock-synced flag), so drivers
need no clock.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator, Mapping
from importlib import metadata
from typing import Any, ClassVar, Protocol

ENTRY_POINT_GROUP = "shopkeeper.drivers"


@dataclasses.dataclass(frozen=True, slots=True)
class DoorCount:
    """People who crossed one door since this driver's previous DoorCount for that door."""

    door: str
    entries: int
    exits: int


@dataclasses.dataclass(frozen=True, slots=True)
class PresenceChange:
    """Someone is (or no longer is) present in one zone; kept on the box, never released."""

    zone: str
    present: bool


@dataclasses.dataclass(frozen=True, slots=True)
class BasketLine:
    """One line item as the POS recorded it. Everything here stays on the box."""

    name: str
    quantity: int  # whole units; a weighed item counts as 1
    unit_price_cents: int
    line_total_cents: int  # negative for a refunded line
    sku: str = ""
    pos_category: str = ""  # the POS's own category, used by the shop's mapping rules


@dataclasses.dataclass(frozen=True, slots=True)
class Basket:
    """One completed POS transaction, normalised. Money is integer cents.

    `source_id` (receipt number, order or event id) makes emission idempotent: the agent stores a
    basket once per (driver, source_id). `kind` is "sale", "refund" or "void"; `flagged` names a
    problem (e.g. "total_mismatch") that keeps the basket local and out of every release.
    """

    source_id: str
    lines: tuple[BasketLine, ...]
    total_cents: int
    kind: str = "sale"
    payment: str = ""  # "cash", "card", "other" or ""
    currency: str = ""
    flagged: str = ""
    pos_time: str = ""  # the POS's own time stamp, kept as text; the agent stamps on receipt


Reading = DoorCount | PresenceChange | Basket


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

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, Any]) -> Driver:
        """Validate options without any I/O; raise DriverOptionError on the first bad key."""

    @classmethod
    def sample_config(cls) -> str:
        """The driver's commented sample.toml text."""

    def doors(self) -> list[str]:
        """The public door names this instance reports on (part of the released key set)."""

    def start(self, sink: Sink) -> None:
        """Start reading in the background."""

    def stop(self) -> None:
        """Stop; once this returns the driver emits nothing more."""

    def health(self) -> dict[str, Any]:
        """A snapshot of the driver's health counters."""


class LazyDrivers(Mapping[str, type[Driver]]):
    """Installed drivers by kind; a driver's module is imported only when its kind is used."""

    def __init__(self) -> None:
        self._entries = {e.name: e for e in metadata.entry_points(group=ENTRY_POINT_GROUP)}
        self._loaded: dict[str, type[Driver]] = {}

    def __getitem__(self, kind: str) -> type[Driver]:
        if kind not in self._loaded:
            self._loaded[kind] = self._entries[kind].load()
        return self._loaded[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


def installed_drivers() -> Mapping[str, type[Driver]]:
    """Driver classes registered under the `shopkeeper.drivers` entry-point group, by kind."""
    return LazyDrivers()
