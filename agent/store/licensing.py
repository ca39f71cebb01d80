"""SQL of data licensing: the queries the coop sent, and the raw reads their answers need (local only).

Each function takes the caller's connection; nothing here commits.
"""

from __future__ import annotations

import sqlite3
from typing import Any

QUERY_COLUMNS = (
    "query_id",
    "nonce",
    "kind",
    "params",
    "requester",
    "purpose",
    "epsilon",
    "credit_cents",
    "expires_wall_ns",
    "signed",
    "received_wall_ns",
    "status",
    "reason",
    "ledger_id",
    "decided_wall_ns",
)
RAW_GONE_KEY = "raw_gone_through_window_ns"  # agent_state: the newest window retention removed raw data of


def insert_query(conn: sqlite3.Connection, row: dict[str, Any]) -> bool:
    """Store a verified query once; False when its id or nonce was seen before (a replay)."""
    cursor = conn.execute(
        f"INSERT OR IGNORE INTO licensing_queries ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
        tuple(row.values()),
    )
    return cursor.rowcount == 1


def queries(conn: sqlite3.Connection, status: str | None = None) -> list[dict[str, Any]]:
    """Queries, newest first, optionally only those in one status."""
    sql = f"SELECT {', '.join(QUERY_COLUMNS)} FROM licensing_queries"
    args: tuple[Any, ...] = ()
    if status is not None:
        sql += " WHERE status = ?"
        args = (status,)
    return [
        dict(zip(QUERY_COLUMNS, r, strict=True)) for r in conn.execute(sql + " ORDER BY received_wall_ns DESC", args)
    ]


def query(conn: sqlite3.Connection, query_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        f"SELECT {', '.join(QUERY_COLUMNS)} FROM licensing_queries WHERE query_id = ?", (query_id,)
    ).fetchone()
    return None if row is None else dict(zip(QUERY_COLUMNS, row, strict=True))


def set_status(
    conn: sqlite3.Connection, query_id: str, status: str, reason: str, now_ns: int, ledger_id: int | None = None
) -> None:
    conn.execute(
        "UPDATE licensing_queries SET status = ?, reason = ?, decided_wall_ns = ?, ledger_id = ? WHERE query_id = ?",
        (status, reason, now_ns, ledger_id, query_id),
    )


def entries_by_window(conn: sqlite3.Connection, start_ns: int, end_ns: int) -> list[tuple[int, int]]:
    """(window start, entries) of door readings fixed to windows in [start, end)."""
    return [
        (int(w), int(e))
        for w, e in conn.execute(
            "SELECT window_ns, sum(entries) FROM events WHERE window_ns >= ? AND window_ns < ? GROUP BY window_ns",
            (start_ns, end_ns),
        )
    ]


def sale_lines_between(conn: sqlite3.Connection, start_ns: int, end_ns: int) -> list[tuple[int, str, int, int]]:
    """(basket id, category, quantity, line total) of completed, unflagged sales in windows in [start, end)."""
    return [
        (int(b), str(c), int(q), int(t))
        for b, c, q, t in conn.execute(
            "SELECT l.basket_id, l.category, l.quantity, l.line_total_cents FROM basket_lines l"
            " JOIN baskets b ON b.id = l.basket_id WHERE b.window_ns >= ? AND b.window_ns < ?"
            " AND b.kind = 'sale' AND b.flagged = ''",
            (start_ns, end_ns),
        )
    ]


def newest_window_to_drop(
    conn: sqlite3.Connection, sql_where: str, args: tuple[Any, ...], tables: tuple[str, ...] = ("events", "baskets")
) -> int | None:
    """The newest window among the raw rows a retention delete is about to remove."""
    newest = None
    for table in tables:
        value = conn.execute(f"SELECT max(window_ns) FROM {table} WHERE {sql_where}", args).fetchone()[0]
        if value is not None:
            newest = int(value) if newest is None else max(newest, int(value))
    return newest
