"""One writer thread that stamps readings on receipt and commits them to SQLite in batches.

A reading counts as accepted only once its batch has committed; `flush()` waits for that. The queue
is bounded, so a flood of readings slows the drivers down instead of growing memory.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from agent.clock import Clock, boot_id
from agent.driver_api import Basket, BasketLine, DoorCount, PresenceChange, Reading
from agent.privacy.bounds import OTHER
from agent.store import Store, raw_events

log = logging.getLogger(__name__)

BATCH_MAX = 500
BATCH_WAIT_S = 0.05


@dataclasses.dataclass(frozen=True, slots=True)
class StampedReading:
    boot_id: str
    mono_ns: int
    wall_ns: int
    synced: bool
    driver: str
    reading: Reading


class IngestWriter:
    """Receives readings from drivers (as their Sink) and writes them in batches."""

    def __init__(
        self, store: Store, clock: Clock, queue_max: int = 10_000, categorize: Callable[[BasketLine], str] | None = None
    ) -> None:
        self.store, self.clock = store, clock
        self.categorize = categorize or (lambda _line: OTHER)
        self.duplicates = 0
        self.boot = boot_id()
        self._queue: queue.Queue[StampedReading | threading.Event | None] = queue.Queue(maxsize=queue_max)
        self._thread = threading.Thread(target=self._run, name="ingest-writer", daemon=True)
        self.accepted = 0
        self.bad_frames: Counter[str] = Counter()
        self.problems: Counter[str] = Counter()
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread.start()

    def sink_for(self, driver: str) -> DriverSink:
        """The Sink handed to one driver instance."""
        return DriverSink(self, driver)

    def submit(self, driver: str, reading: Reading) -> None:
        """Stamp now and queue; blocks while the queue is full (back-pressure on the driver)."""
        stamped = StampedReading(
            self.boot, self.clock.monotonic_ns(), self.clock.wall_ns(), self.clock.synced(), driver, reading
        )
        self._queue.put(stamped)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is committed."""
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def stop(self) -> None:
        """Commit what is queued, then end the writer thread."""
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            batch: list[StampedReading] = []
            waiters: list[threading.Event] = []
            while True:
                if item is None:
                    stopping = True
                elif isinstance(item, threading.Event):
                    waiters.append(item)
                else:
                    batch.append(item)
                if stopping or len(batch) >= BATCH_MAX:
                    break
                try:
                    item = self._queue.get(timeout=BATCH_WAIT_S if batch else 0.001)
                except queue.Empty:
                    break
            if batch:
                self._commit(batch)
            for waiter in waiters:
                waiter.set()

    def _commit(self, batch: list[StampedReading]) -> None:
        doors = [
            (
                s.boot_id,
                s.mono_ns,
                s.wall_ns,
                int(s.synced),
                s.driver,
                s.reading.door,
                s.reading.entries,
                s.reading.exits,
            )
            for s in batch
            if isinstance(s.reading, DoorCount)
        ]
        presence = [
            (s.boot_id, s.mono_ns, s.wall_ns, int(s.synced), s.driver, s.reading.zone, int(s.reading.present))
            for s in batch
            if isinstance(s.reading, PresenceChange)
        ]
        baskets = [s for s in batch if isinstance(s.reading, Basket)]
        with self.store.transaction() as conn:
            for stamped in baskets:
                self._insert_basket(conn, stamped)
            raw_events.insert_door_counts(conn, doors)
            raw_events.insert_presence(conn, presence)
        with self._lock:
            self.accepted += len(batch)

    def _insert_basket(self, conn: sqlite3.Connection, stamped: StampedReading) -> None:
        """Store a basket once per (driver, source_id): a replayed webhook or re-read file adds nothing."""
        b = stamped.reading
        assert isinstance(b, Basket)
        basket = (
            stamped.boot_id,
            stamped.mono_ns,
            stamped.wall_ns,
            int(stamped.synced),
            stamped.driver,
            b.source_id,
            b.kind,
            b.payment,
            b.currency,
            b.total_cents,
            b.flagged,
            b.pos_time,
        )
        lines = [
            (
                line.name,
                line.sku,
                line.pos_category,
                self.categorize(line),
                line.quantity,
                line.unit_price_cents,
                line.line_total_cents,
            )
            for line in b.lines
        ]
        if not raw_events.insert_basket(conn, basket, lines):
            self.duplicates += 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "accepted": self.accepted,
                "queued": self._queue.qsize(),
                "duplicate_baskets": self.duplicates,
                "bad_frames": dict(self.bad_frames),
                "problems": dict(self.problems),
            }


@dataclasses.dataclass
class DriverSink:
    """The Sink one driver instance writes to."""

    writer: IngestWriter
    driver: str
    closed: bool = False

    def emit(self, reading: Reading) -> None:
        if not self.closed:
            self.writer.submit(self.driver, reading)

    def bad_frame(self, driver: str, reason: str) -> None:
        with self.writer._lock:
            self.writer.bad_frames[f"{driver}:{reason}"] += 1

    def problem(self, driver: str, message: str) -> None:
        log.warning("driver %s: %s", driver, message)
        with self.writer._lock:
            self.writer.problems[driver] += 1

    def flush(self, timeout: float = 10.0) -> bool:
        return self.writer.flush(timeout)
