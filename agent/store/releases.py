"""SQL on the release records: the ledger (hash-chained, privacy/ledger.py) and the accountant's spends.

The release writes both inside its one transaction, with the outbox rows; nothing here commits.
"""

from __future__ import annotations

import sqlite3
from typing import Any


def is_released(conn: sqlite3.Connection, window_start_ns: int, stream: str) -> bool:
    """True once (window, stream) has a ledger row: its stored values stand and are never drawn again."""
    row = conn.execute(
        "SELECT 1 FROM release_ledger WHERE window_start_ns = ? AND stream = ?", (window_start_ns, stream)
    ).fetchone()
    return row is not None


def spends_in(conn: sqlite3.Connection, window_start_ns: int, unit: str) -> list[tuple[str, str]]:
    """(epsilon, rho) text of every spend on one privacy unit in one window ('' where not used)."""
    return [
        (str(e or ""), str(r or ""))
        for e, r in conn.execute(
            "SELECT epsilon, rho FROM privacy_spend WHERE window_start_ns = ? AND unit = ?", (window_start_ns, unit)
        )
    ]


def insert_ledger_row(conn: sqlite3.Connection, row: dict[str, Any]) -> int:
    """Append one ledger row (its hash already computed); returns its id."""
    cursor = conn.execute(
        f"INSERT INTO release_ledger ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values())
    )
    return int(cursor.lastrowid or 0)


def insert_spend(
    conn: sqlite3.Connection, window_start_ns: int, stream: str, unit: str, epsilon: str, rho: str, ledger_id: int
) -> None:
    conn.execute(
        "INSERT INTO privacy_spend (window_start_ns, stream, unit, epsilon, ledger_id, rho) VALUES (?, ?, ?, ?, ?, ?)",
        (window_start_ns, stream, unit, epsilon, ledger_id, rho),
    )
