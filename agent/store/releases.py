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
    conn: sqlite3.Connection, window_start_ns: int, stream: str, unit: str, epsilon: str, rho: str, ledger_id: int
) -> None:
    conn.execute(
        "INSERT INTO privacy_spend (window_start_ns, stream, unit, epsilon, ledger_id, rho) VALUES (?, ?, ?, ?, ?, ?)",
        (window_start_ns, stream, unit, epsilon, ledger_id, rho),
    )


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
    spend_row = conn.execute(
        "SELECT unit, epsilon, rho FROM privacy_spend WHERE ledger_id = ?", (ledger_id,)
    ).fetchone()
    messages = outbox.messages_of(conn, ledger_id)
    spend = dict(zip(("unit", "epsilon", "rho"), spend_row, strict=True)) if spend_row else {}
    return dict(zip(LEDGER_COLUMNS, row, strict=True)), spend, messages


def restore_release(
    conn: sqlite3.Connection, release: dict[str, Any], spend: dict[str, Any], messages: list[dict[str, Any]]
) -> int:
    """Put a release back as it was committed (same hashes, seqs and message ids); returns how many of
    its messages could not be put back because their seq or msg_id is taken."""
    ledger_id = insert_ledger_row(conn, {k: release[k] for k in LEDGER_COLUMNS})
    if spend:
        insert_spend(
            conn,
            release["window_start_ns"],
            release["stream"],
            spend["unit"],
            spend["epsilon"],
            spend.get("rho", ""),
            ledger_id,
        )
    return sum(not outbox.restore(conn, m, ledger_id) for m in messages)


def windows_per_stream(conn: sqlite3.Connection) -> list[tuple[str, int]]:
    """How many windows each stream has released."""
    return [(str(s), int(n)) for s, n in conn.execute("SELECT stream, count(*) FROM privacy_spend GROUP BY stream")]


def last_window_spends(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """The epsilon text of every spend in the newest released window, by privacy unit."""
    out: dict[str, list[str]] = {}
    for unit, epsilon in conn.execute(
        "SELECT unit, epsilon FROM privacy_spend"
        " WHERE window_start_ns = (SELECT max(window_start_ns) FROM privacy_spend)"
    ):
        out.setdefault(str(unit), []).append(str(epsilon))
    return out


def last_window_length_ns(conn: sqlite3.Connection) -> int | None:
    """The length of the newest released window (None before the first release)."""
    row = conn.execute("SELECT window_end_ns - window_start_ns FROM release_ledger ORDER BY id DESC LIMIT 1").fetchone()
    return None if row is None else int(row[0])
