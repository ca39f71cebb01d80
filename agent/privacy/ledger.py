"""The release ledger's hash chain: each row commits to its content and to the row before it.

An edited, deleted or reordered row breaks the chain, which `shopkeeper ledger verify` reports.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any

GENESIS = "0" * 64
CHAINED_FIELDS = (
    "window_start_ns",
    "window_end_ns",
    "stream",
    "noisy_values",
    "mechanism",
    "parameters",
    "epsilon",
    "sampler_version",
    "released_wall_ns",
)


def row_hash(prev_hash: str, row: dict[str, Any]) -> str:
    """sha256 over the previous hash and the row's chained fields in canonical JSON."""
    body = json.dumps({k: row[k] for k in CHAINED_FIELDS}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256((prev_hash + "\n" + body).encode()).hexdigest()


def last_hash(conn: sqlite3.Connection) -> str:
    row = conn.execute("SELECT hash FROM release_ledger ORDER BY id DESC LIMIT 1").fetchone()
    return GENESIS if row is None else str(row[0])


def verify_chain(conn: sqlite3.Connection) -> list[str]:
    """Problems found walking the chain from the first row; an empty list means it is intact."""
    problems: list[str] = []
    prev = GENESIS
    cursor = conn.execute(f"SELECT id, prev_hash, hash, {', '.join(CHAINED_FIELDS)} FROM release_ledger ORDER BY id")
    names = [d[0] for d in cursor.description]
    for values in cursor:
        row = dict(zip(names, values, strict=True))
        if row["prev_hash"] != prev:
            problems.append(
                f"ledger row {row['id']}: prev_hash does not match the row before it (row missing or reordered)"
            )
        expected = row_hash(row["prev_hash"], row)
        if expected != row["hash"]:
            problems.append(f"ledger row {row['id']}: content does not match its hash (row was edited)")
        prev = row["hash"]
    return problems
