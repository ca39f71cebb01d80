"""SQL of the shop's secure-aggregation rounds (tables from migration 0011): what it joined, what it put in,
which windows are spent, and how each round ended. Each function takes the caller's connection."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

SPEND_PREFIX = "secagg:"  # privacy_spend and release_ledger stream names of contributions, e.g. secagg:footfall_store


@dataclass(frozen=True)
class RoundRow:
    """One round as the shop recorded it."""

    round_id: str
    stream: str
    cells: list[str]
    window_ns: int
    participants: int
    threshold: int
    rho: str
    state: str
    reason: str
    true_values: list[int] | None
    noise_values: list[int] | None
    survivors: int | None
    included: bool | None
    joined_wall_ns: int
    input_sent_wall_ns: int | None
    finished_wall_ns: int | None


_COLUMNS = (
    "round_id, stream, cells, window_ns, participants, threshold, rho, state, reason, true_values, noise_values,"
    " survivors, included, joined_wall_ns, input_sent_wall_ns, finished_wall_ns"
)


def _row(values: tuple[Any, ...]) -> RoundRow:
    (rid, stream, cells, window_ns, n, t, rho, state, reason, true, noise, surv, incl, joined, sent, done) = values
    return RoundRow(
        str(rid),
        str(stream),
        json.loads(cells),
        int(window_ns),
        int(n),
        int(t),
        str(rho),
        str(state),
        str(reason),
        json.loads(true) if true else None,
        json.loads(noise) if noise else None,
        None if surv is None else int(surv),
        None if incl is None else bool(incl),
        int(joined),
        None if sent is None else int(sent),
        None if done is None else int(done),
    )


def insert_round(
    conn: sqlite3.Connection,
    round_id: str,
    round_tag: bytes,
    stream: str,
    cells: tuple[str, ...],
    window_ns: int,
    participants: int,
    threshold: int,
    rho: str,
    share_sigma2: str,
    wall_ns: int,
) -> None:
    """Record that this shop joined `round_id` (before its key advert leaves: a restart then drops the round)."""
    conn.execute(
        "INSERT INTO secagg_rounds (round_id, round_tag, stream, cells, window_ns, participants, threshold, rho,"
        " share_sigma2, state, joined_wall_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'joined', ?)",
        (
            round_id,
            round_tag.hex(),
            stream,
            json.dumps(list(cells)),
            window_ns,
            participants,
            threshold,
            rho,
            share_sigma2,
            wall_ns,
        ),
    )


def known_round(conn: sqlite3.Connection, round_id: str) -> RoundRow | None:
    """The recorded round, or None if this shop never joined it."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM secagg_rounds WHERE round_id = ?", (round_id,)).fetchone()
    return None if row is None else _row(row)


def spent_windows(conn: sqlite3.Connection, stream: str, starts_ns: list[int]) -> dict[int, str]:
    """window start -> the round it already entered, for the windows of `starts_ns` that are spent.

    A window also counts as spent when the release ledger holds a contribution for it: the journal puts
    ledger rows back after a lost database, so the trap survives that too."""
    out: dict[int, str] = {}
    for start in starts_ns:
        row = conn.execute(
            "SELECT round_id FROM secagg_windows WHERE stream = ? AND window_start_ns = ?", (stream, start)
        ).fetchone()
        if row is None:
            row = conn.execute(
                "SELECT json_extract(noisy_values, '$.round_id') FROM release_ledger"
                " WHERE stream = ? AND window_start_ns = ?",
                (SPEND_PREFIX + stream, start),
            ).fetchone()
        if row is not None:
            out[start] = str(row[0])
    return out


def spend_windows(conn: sqlite3.Connection, stream: str, starts_ns: list[int], round_id: str) -> None:
    """The trap rows: these windows' input of `stream` entered `round_id` (the primary key refuses a second)."""
    conn.executemany(
        "INSERT INTO secagg_windows (stream, window_start_ns, round_id) VALUES (?, ?, ?)",
        [(stream, start, round_id) for start in starts_ns],
    )


def mark_input_sent(conn: sqlite3.Connection, round_id: str, true_values: list[int], wall_ns: int) -> None:
    conn.execute(
        "UPDATE secagg_rounds SET state = 'input_sent', true_values = ?, input_sent_wall_ns = ? WHERE round_id = ?",
        (json.dumps(true_values), wall_ns, round_id),
    )


def record_noise(conn: sqlite3.Connection, round_id: str, noise: list[int]) -> None:
    """This shop's own noise share (local only, like its raw data: the owner's page and tests read it)."""
    conn.execute("UPDATE secagg_rounds SET noise_values = ? WHERE round_id = ?", (json.dumps(noise), round_id))


def finish_round(
    conn: sqlite3.Connection,
    round_id: str,
    state: str,
    reason: str,
    wall_ns: int,
    survivors: int | None = None,
    included: bool | None = None,
) -> None:
    """How the round ended for this shop: released (with how many shops were summed), aborted or refused."""
    conn.execute(
        "UPDATE secagg_rounds SET state = ?, reason = ?, survivors = ?, included = ?, finished_wall_ns = ?"
        " WHERE round_id = ? AND finished_wall_ns IS NULL",
        (state, reason[:500], survivors, None if included is None else int(included), wall_ns, round_id),
    )


def rounds_since(conn: sqlite3.Connection, wall_ns: int) -> int:
    """How many rounds this shop recorded since `wall_ns`."""
    return int(conn.execute("SELECT COUNT(*) FROM secagg_rounds WHERE joined_wall_ns >= ?", (wall_ns,)).fetchone()[0])


def rounds(conn: sqlite3.Connection, limit: int = 50) -> list[RoundRow]:
    """The newest rounds first."""
    return [
        _row(r)
        for r in conn.execute(f"SELECT {_COLUMNS} FROM secagg_rounds ORDER BY joined_wall_ns DESC LIMIT ?", (limit,))
    ]
