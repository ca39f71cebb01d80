"""Run one real driver into the agent's real ingest writer and SQLite store, and read back what it kept.

A "restart" is a clean stop of driver, writer and store, and a fresh set on the same database file,
as when systemd restarts the agent.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from agent.pipeline.ingest import IngestWriter
from agent.store import Store
from tests.conftest import ManualClock


@contextlib.contextmanager
def agent_running(db: Path, make_driver: Callable[[], Any]) -> Iterator[Any]:
    """Store, ingest writer and one driver writing into it; everything is stopped on exit."""
    store = Store(db)
    writer = IngestWriter(store, ManualClock())
    writer.start()
    driver = make_driver()
    driver.backoff_initial_s, driver.backoff_max_s = 0.02, 0.2
    driver.start(writer.sink_for(driver.name))
    try:
        yield driver
    finally:
        driver.stop()
        writer.stop()
        store.close()


def stored_totals(db: Path, driver: str) -> tuple[int, int]:
    """(entries, exits) the store holds for one driver."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        entries, exits = conn.execute(
            "SELECT coalesce(sum(entries), 0), coalesce(sum(exits), 0) FROM events WHERE driver = ?", (driver,)
        ).fetchone()
    return int(entries), int(exits)


def stored_state(db: Path, driver: str) -> dict[str, str]:
    """The driver's committed state, by key."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return dict(conn.execute("SELECT key, value FROM driver_state WHERE driver = ?", (driver,)).fetchall())


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll a condition on the store (committed rows cannot be awaited any other way)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)
