"""SQL on `driver_state`: each driver's own small values (a counter baseline), local only, never published.

Each function takes the caller's connection, so the ingest writer saves a driver's state in the same
transaction as the readings that state accounts for.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

StateRow = tuple[str, str, str, int]  # driver, key, value, wall ns of the save


def save(conn: sqlite3.Connection, rows: Sequence[StateRow]) -> None:
    """Insert or replace values; of several rows for one (driver, key) the last one wins."""
    conn.executemany(
        "INSERT INTO driver_state (driver, key, value, updated_wall_ns) VALUES (?, ?, ?, ?)"
        " ON CONFLICT(driver, key) DO UPDATE SET value = excluded.value, updated_wall_ns = excluded.updated_wall_ns",
        rows,
    )


def load(conn: sqlite3.Connection, driver: str, key: str) -> str | None:
    """The value last committed for (driver, key), or None."""
    row = conn.execute("SELECT value FROM driver_state WHERE driver = ? AND key = ?", (driver, key)).fetchone()
    return None if row is None else str(row[0])


def load_all(conn: sqlite3.Connection, driver: str) -> dict[str, str]:
    """Every committed value of one driver, by key."""
    rows = conn.execute("SELECT key, value FROM driver_state WHERE driver = ? ORDER BY key", (driver,))
    return {str(k): str(v) for k, v in rows}
