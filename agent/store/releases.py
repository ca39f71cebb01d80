"""SQL on the release records: the ledger (hash-chained, privacy/ledger.py) and the accountant's spends.

The release writes both inside its one transaction, with the outbox rows; nothing here commits.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from agent.privacy.ledger import CHAINED_FIELDS
from agent.store import outbox


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
    conn: sqlite3.Connection,
    window_start_ns: int,
    stream: str,
    unit: str,
    epsilon: str,
    rho: str,
    ledger_id: int,
    kind: str = "summary",
) -> None:
    """Record what one release costs one unit in one window (the privacy filter sums these per window)."""
    conn.execute(
        "INSERT INTO privacy_spend (window_start_ns, stream, unit, epsilon, ledger_id, rho, kind)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (window_start_ns, stream, unit, epsilon, ledger_id, rho, kind),
    )


# Ledger rows whose stream has this prefix are licensed query answers or refusals (agent/licensing),
# not windows of the hourly grid: the grid's bookkeeping (next window, window length) skips them.
QUERY_PREFIX = "query:"


def is_grid_stream(stream: str) -> bool:
    return not stream.startswith(QUERY_PREFIX)


# Every ledger column but the id: the hash-chained fields, then the chain itself.
LEDGER_COLUMNS = (*CHAINED_FIELDS, "prev_hash", "hash")


def ledger_keys(conn: sqlite3.Connection) -> dict[tuple[int, str], tuple[int, str]]:
    """(window start, stream) -> (ledger id, hash) of every release the database holds."""
    return {
        (int(s), str(st)): (int(i), str(h))
        for i, s, st, h in conn.execute("SELECT id, window_start_ns, stream, hash FROM release_ledger ORDER BY id")
    }


def release_record(
    conn: sqlite3.Connection, ledger_id: int
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """One release as committed: its ledger row, its spend and its outbox messages."""
    row = conn.execute(f"SELECT {', '.join(LEDGER_COLUMNS)} FROM release_ledger WHERE id = ?", (ledger_id,)).fetchone()
    spend_rows = conn.execute(
        "SELECT unit, epsilon, rho, kind, window_start_ns FROM privacy_spend WHERE ledger_id = ?"
        " ORDER BY window_start_ns",
        (ledger_id,),
    ).fetchall()
    messages = outbox.messages_of(conn, ledger_id)
    spend: dict[str, Any] = {}
    if spend_rows:
        unit, epsilon, rho, kind, _start = spend_rows[0]
        spend = {"unit": unit, "epsilon": epsilon, "rho": rho}
        # An hourly release keeps the journal's original spend shape; only other kinds say what they are,
        # and a release over many windows (a query answer) lists every window it spent in.
        if kind != "summary":
            spend["kind"] = kind
            spend["windows"] = [int(r[4]) for r in spend_rows]
    return dict(zip(LEDGER_COLUMNS, row, strict=True)), spend, messages


def restore_release(
    conn: sqlite3.Connection, release: dict[str, Any], spend: dict[str, Any], messages: list[dict[str, Any]]
) -> int:
    """Put a release back as it was committed (same hashes, seqs and message ids); returns how many of
    its messages could not be put back because their seq or msg_id is taken."""
    ledger_id = insert_ledger_row(conn, {k: release[k] for k in LEDGER_COLUMNS})
    for window in spend.get("windows", [release["window_start_ns"]] if spend else []):
        insert_spend(
            conn,
            int(window),
            release["stream"],
            spend["unit"],
            spend["epsilon"],
            spend.get("rho", ""),
            ledger_id,
            spend.get("kind", "summary"),
        )
    return sum(not outbox.restore(conn, m, ledger_id) for m in messages)


def windows_per_stream(conn: sqlite3.Connection) -> list[tuple[str, int]]:
    """How many windows each stream has released."""
    return [
        (str(s), int(n))
        for s, n in conn.execute("SELECT stream, count(*) FROM privacy_spend WHERE kind = 'summary' GROUP BY stream")
    ]


def last_window_spends(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """The epsilon text of every spend in the newest released window, by privacy unit."""
    out: dict[str, list[str]] = {}
    for unit, epsilon in conn.execute(
        "SELECT unit, epsilon FROM privacy_spend"
        " WHERE window_start_ns = (SELECT max(window_start_ns) FROM privacy_spend WHERE kind = 'summary')"
    ):
        out.setdefault(str(unit), []).append(str(epsilon))
    return out


def last_window_length_ns(conn: sqlite3.Connection) -> int | None:
    """The length of the newest released window (None before the first release)."""
    row = conn.execute(
        "SELECT window_end_ns - window_start_ns FROM release_ledger WHERE stream NOT LIKE 'query:%'"
        " ORDER BY id DESC LIMIT 1"
    ).fetchone()
    return None if row is None else int(row[0])
