"""One writer thread that stamps readings on receipt and commits them to SQLite in batches.

A reading counts as accepted only once its batch has committed; `flush()` waits for that. The queue
is bounded, so a flood of readings slows the drivers down instead of growing memory. A driver's state
(a counter baseline) travels with the reading it accounts for and lands in the same transaction.

The common reading, a DoorCount without state, is checked and stamped straight into its `events` row
(a plain tuple) on the driver's thread, so the writer inserts what it takes without building anything
per reading; every other reading travels as a StampedReading.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from agent.clock import Clock, boot_id
from agent.driver_api import Basket, BasketLine, DoorCount, DriverError, PresenceChange, Reading
from agent.driver_api.contract import state_problem
from agent.logs import RateLimitedLog
from agent.pipeline.batch_queue import BatchQueue
from agent.privacy.bounds import OTHER
from agent.store import Store, driver_state, raw_events
from agent.store.raw_events import DoorRow
from agent.threads import start_guarded

log = logging.getLogger(__name__)

BATCH_MAX = 2000  # rows per commit under load: fewer fsyncs; a commit of 2000 rows takes milliseconds
BATCH_WAIT_S = 0.05
QUEUE_WAIT_S = 5.0  # how long a driver may be held up by a full queue before its reading is refused
MAX_COUNT = 1_000_000  # entries or exits in one DoorCount: far above any door, far below int64
MAX_CENTS = 10**13  # |amount| of one basket or line: 100 billion in cents, far below int64
MAX_QUANTITY = 10**6
MAX_TEXT = 4096  # characters in one stored text field
LOAD_STATE_WAIT_S = 10.0  # a driver's first sight of a sensor waits this long for earlier readings to commit


def unstorable(reading: Reading) -> str | None:
    """Why the store cannot take this reading as it is, or None. Checked before it is queued, so one
    absurd value (an amount of 1e30) is refused alone and never reaches a batch."""
    if isinstance(reading, DoorCount):
        entries, exits = reading.entries, reading.exits
        if type(entries) is int and type(exits) is int and 0 <= entries <= MAX_COUNT and 0 <= exits <= MAX_COUNT:
            return None  # the common case, per reading: no loop, no message
        for name, value in (("entries", reading.entries), ("exits", reading.exits)):
            if not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
                return f"{name} {value!r} is not a count between 0 and {MAX_COUNT}"
        return None
    if isinstance(reading, Basket):
        if not isinstance(reading.total_cents, int) or abs(reading.total_cents) > MAX_CENTS:
            return f"total {reading.total_cents!r} is not an amount in cents within +-{MAX_CENTS}"
        texts = [reading.source_id, reading.kind, reading.payment, reading.currency, reading.flagged, reading.pos_time]
        for line in reading.lines:
            for name, value, bound in (
                ("quantity", line.quantity, MAX_QUANTITY),
                ("unit price", line.unit_price_cents, MAX_CENTS),
                ("line total", line.line_total_cents, MAX_CENTS),
            ):
                if not isinstance(value, int) or abs(value) > bound:
                    return f"line {line.name[:40]!r}: {name} {value!r} is out of range (at most {bound})"
            texts += [line.name, line.sku, line.pos_category]
        if any(not isinstance(s, str) or len(s) > MAX_TEXT for s in texts):
            return f"a text field is not text of at most {MAX_TEXT} characters"
        if not reading.source_id:
            return "no source id (order, receipt or row id): it could not be de-duplicated"
    return None


def is_disk_problem(exc: sqlite3.OperationalError) -> bool:
    """A full disk or an I/O error: wait and retry, the data is still in memory."""
    text = str(exc).lower()
    return any(s in text for s in ("full", "disk i/o", "readonly", "unable to open", "locked", "busy"))


class StampedReading(NamedTuple):
    """A reading with its receipt stamps (a tuple: built once per reading, so it must be cheap)."""

    boot_id: str
    mono_ns: int
    wall_ns: int
    synced: bool
    driver: str
    reading: Reading | None  # None: a save of driver state alone
    state: tuple[tuple[str, str], ...] = ()  # the driver's (key, value) pairs, saved with the reading


Queued = DoorRow | StampedReading  # a plain tuple is a stateless DoorCount, already its events row


def door_row(stamped: StampedReading, count: DoorCount) -> DoorRow:
    s = stamped
    return (s.boot_id, s.mono_ns, s.wall_ns, int(s.synced), s.driver, count.door, count.entries, count.exits)


def driver_of(item: Queued) -> str:
    return item.driver if isinstance(item, StampedReading) else item[4]


class IngestWriter:
    """Receives readings from drivers (as their Sink) and writes them in batches."""

    def __init__(
        self, store: Store, clock: Clock, queue_max: int = 10_000, categorize: Callable[[BasketLine], str] | None = None
    ) -> None:
        self.store, self.clock = store, clock
        self.categorize = categorize or (lambda _line: OTHER)
        self.duplicates = 0
        self.boot = boot_id()
        self._queue: BatchQueue[Queued | threading.Event | None] = BatchQueue(queue_max)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.accepted = 0
        self.bad_frames: Counter[str] = Counter()
        self.problems: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()  # "driver:reason" -> readings the store could not take
        self.store_error = ""  # why the store is not writable right now (a full disk), "" when it is
        self._lock = threading.Lock()
        self._refusal_log = RateLimitedLog(log)

    def start(self) -> None:
        self._thread = start_guarded("ingest-writer", self._run)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def sink_for(self, driver: str) -> DriverSink:
        """The Sink handed to one driver instance."""
        return DriverSink(self, driver)

    def submit(self, driver: str, reading: Reading | None, state: Mapping[str, str] | None = None) -> bool:
        """Stamp now and queue; False (counted, logged) when the reading is refused.

        `state` is committed with the reading or not at all (a refused reading takes its state along).

        A reading the store could never hold is refused at once, on its own. A full queue (the store is
        not keeping up, e.g. a full disk) blocks the driver for up to QUEUE_WAIT_S, then refuses: a
        webhook then answers 503 and its sender retries later; nothing that was acknowledged is lost.
        """
        if state is None and type(reading) is DoorCount:
            # The common case, per reading, kept to what acceptance needs: two counts checked, three
            # clock reads, one tuple, one append. Anything out of the ordinary takes the path below.
            entries, exits = reading.entries, reading.exits
            if type(entries) is int and type(exits) is int and 0 <= entries <= MAX_COUNT and 0 <= exits <= MAX_COUNT:
                clock = self.clock
                row = (
                    self.boot,
                    clock.monotonic_ns(),
                    clock.wall_ns(),
                    clock.synced(),
                    driver,
                    reading.door,
                    entries,
                    exits,
                )
                if self._queue.put(row, QUEUE_WAIT_S):
                    return True
                self._refuse(driver, self._queue_full())
                return False
        reason = (None if reading is None else unstorable(reading)) or (state_problem(state) if state else None)
        if reason is None:
            stamped = StampedReading(
                self.boot,
                self.clock.monotonic_ns(),
                self.clock.wall_ns(),
                self.clock.synced(),
                driver,
                reading,
                tuple(state.items()) if state else (),
            )
            if self._queue.put(stamped, QUEUE_WAIT_S):
                return True
            reason = self._queue_full()
        self._refuse(driver, reason)
        return False

    def _queue_full(self) -> str:
        return "queue full: the store is not keeping up" + (f" ({self.store_error})" if self.store_error else "")

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is committed (False on timeout)."""
        done = threading.Event()
        if not self._queue.put(done, timeout):
            return False
        return done.wait(timeout)

    def stop(self) -> None:
        """Commit what is queued, then end the writer thread (never hangs on a full queue)."""
        self._stopping.set()
        self._queue.put_nowait(None)  # a full queue: the writer sees _stopping within 0.5 s instead
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            items = self._queue.take(BATCH_MAX, 0.5)
            if not items:
                stopping = self._stopping.is_set()
                continue
            batch: list[Queued] = []
            waiters: list[threading.Event] = []
            while True:
                for item in items:
                    if type(item) is tuple:
                        batch.append(item)
                    elif item is None:
                        stopping = True
                    elif isinstance(item, threading.Event):
                        waiters.append(item)
                    else:
                        batch.append(item)
                # Keep gathering while readings keep coming (up to BATCH_MAX), as one commit.
                if stopping or len(batch) >= BATCH_MAX:
                    break
                items = self._queue.take(BATCH_MAX - len(batch), BATCH_WAIT_S if batch else 0.001)
                if not items:
                    break
            if batch and not self._commit_until_stored(batch):
                return  # stopping while the store refused every write: nothing of it was acknowledged
            for waiter in waiters:
                waiter.set()

    def _commit_until_stored(self, batch: list[Queued]) -> bool:
        """Commit the batch, retrying while the disk is full; a record the store rejects goes alone."""
        delay = 0.5
        while True:
            try:
                self._commit(batch)
                if self.store_error:
                    log.warning("the store is writable again; %d waiting reading(s) committed", len(batch))
                    self.store_error = ""
                return True
            except sqlite3.OperationalError as exc:
                if not is_disk_problem(exc):
                    raise
                if not self.store_error:
                    log.error(
                        "cannot write %s: %s; %d reading(s) wait in memory and new ones are refused once %d are"
                        " queued; retrying until space is freed",
                        self.store.path,
                        exc,
                        len(batch),
                        self._queue.maxsize,
                    )
                self.store_error = f"database not writable: {exc}"
                if self._stopping.wait(delay):
                    log.error("stopping with %d reading(s) not stored (never acknowledged)", len(batch))
                    return False
                delay = min(delay * 2, 10.0)
            except (sqlite3.IntegrityError, sqlite3.InterfaceError, OverflowError, ValueError, TypeError):
                self._commit_one_by_one(batch)
                return True

    def _commit_one_by_one(self, batch: list[Queued]) -> None:
        """Find the records the store cannot take; refuse each alone, keep every other one."""
        for item in batch:
            try:
                self._commit([item])
            except (sqlite3.IntegrityError, sqlite3.InterfaceError, OverflowError, ValueError, TypeError) as exc:
                self._refuse(driver_of(item), f"the store cannot hold it ({type(exc).__name__}: {exc})")

    def _refuse(self, driver: str, reason: str) -> None:
        with self._lock:
            self.refused[f"{driver}:{reason[:120]}"] += 1
        self._refusal_log.warning(f"{driver}:{reason[:60]}", "driver %s: reading refused: %s", driver, reason)

    def _commit(self, batch: list[Queued]) -> None:
        doors: list[DoorRow] = []
        stamped: list[StampedReading] = []  # everything but stateless door counts: usually none
        for item in batch:
            if not isinstance(item, StampedReading):
                doors.append(item)
            else:
                stamped.append(item)
                if isinstance(item.reading, DoorCount):
                    doors.append(door_row(item, item.reading))  # in order among the plain rows
        presence = [
            (s.boot_id, s.mono_ns, s.wall_ns, int(s.synced), s.driver, s.reading.zone, int(s.reading.present))
            for s in stamped
            if isinstance(s.reading, PresenceChange)
        ]
        baskets = [s for s in stamped if isinstance(s.reading, Basket)]
        states = [(s.driver, key, value, s.wall_ns) for s in stamped for key, value in s.state]
        with self.store.transaction() as conn:
            for basket in baskets:
                self._insert_basket(conn, basket)
            raw_events.insert_door_counts(conn, doors)
            raw_events.insert_presence(conn, presence)
            driver_state.save(conn, states)  # in batch order: a later baseline replaces an earlier one
        with self._lock:
            self.accepted += len(batch) - sum(s.reading is None for s in stamped)

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
                "refused": dict(self.refused),
                "store_error": self.store_error,
            }


@dataclasses.dataclass
class DriverSink:
    """The Sink one driver instance writes to."""

    writer: IngestWriter
    driver: str
    closed: bool = False

    def emit(self, reading: Reading, state: Mapping[str, str] | None = None) -> None:
        if not self.closed:
            self.writer.submit(self.driver, reading, state)

    def save_state(self, driver: str, state: Mapping[str, str]) -> None:
        if not self.closed:
            self.writer.submit(self.driver, None, state)

    def load_state(self, driver: str, key: str) -> str | None:
        # Commit what this driver emitted before, so the value read is never older than its readings.
        if not self.writer.flush(LOAD_STATE_WAIT_S):
            raise DriverError(f"the store has not committed earlier readings ({self.writer.store_error or 'busy'})")
        try:
            return driver_state.load(self.writer.store.conn(), self.driver, key)
        except sqlite3.Error as exc:
            raise DriverError(f"cannot read the state of driver {self.driver}: {exc}") from exc

    def bad_frame(self, driver: str, reason: str) -> None:
        with self.writer._lock:
            self.writer.bad_frames[f"{driver}:{reason}"] += 1

    def problem(self, driver: str, message: str) -> None:
        log.warning("driver %s: %s", driver, message)
        with self.writer._lock:
            self.writer.problems[driver] += 1

    def flush(self, timeout: float = 10.0) -> bool:
        return self.writer.flush(timeout)
