"""SQL on the raw tables (events, presence_events, baskets, basket_lines): local only, never published.

Each function takes the caller's connection, so the caller's transaction decides what lands together.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable, Sequence

from agent.store.migrations import source_digest

UNTRUSTED_FIRST_SEEN = 1 << 62
TIMED_TABLES = ("events", "baskets")  # raw records whose window is fixed once their time is trusted

DoorRow = tuple[str, int, int, int, str, str, int, int]  # boot, mono, wall, synced, driver, door, in, out
PresenceRow = tuple[str, int, int, int, str, str, int]  # boot, mono, wall, synced, driver, zone, present
BasketRow = tuple[str, int, int, int, str, str, str, str, str, int, str, str]
LineRow = tuple[str, str, str, str, int, int, int]  # name, sku, pos_category, category, qty, unit, total


DOOR_INSERT = "INSERT INTO events (boot_id, mono_ns, wall_ns, synced, driver, door, entries, exits) VALUES "
DOOR_ROWS_PER_STATEMENT = 100  # 800 parameters: under SQLite's oldest default limit (999)
_DOOR_MANY = DOOR_INSERT + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * DOOR_ROWS_PER_STATEMENT)


def insert_door_counts(conn: sqlite3.Connection, rows: Sequence[DoorRow]) -> None:
    """Insert in statements of 100 rows each (the rest one by one).

    One statement per 100 rows instead of one per row: SQLite parses, binds and steps a tenth as often, and
    Python's sqlite3 hands the GIL over once per statement instead of once per row, which is what a driver
    thread submitting readings meanwhile waits on. Rows keep their order (ids ascend as before).
    """
    k = DOOR_ROWS_PER_STATEMENT
    full = len(rows) - len(rows) % k
    for start in range(0, full, k):
        conn.execute(_DOOR_MANY, list(itertools.chain.from_iterable(rows[start : start + k])))
    if full < len(rows):
        conn.executemany(DOOR_INSERT + "(?, ?, ?, ?, ?, ?, ?, ?)", rows[full:])


def insert_presence(conn: sqlite3.Connection, rows: Sequence[PresenceRow]) -> None:
    conn.executemany(
        "INSERT INTO presence_events (boot_id, mono_ns, wall_ns, synced, driver, zone, present)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def insert_basket(conn: sqlite3.Connection, basket: BasketRow, lines: Iterable[LineRow]) -> bool:
    """Store a basket once per (driver, source_id) for life; False for a replay, even one that arrives
    after retention deleted the basket itself (`pos_source_ids` outlives the raw tables)."""
    driver, source_id = basket[4], basket[5]
    # A time from an unsynchronised clock may be decades off; such an id is kept until the count bound.
    first_seen = basket[2] if basket[3] else UNTRUSTED_FIRST_SEEN
    seen = conn.execute(
        "INSERT OR IGNORE INTO pos_source_ids VALUES (?, ?)", (source_digest(driver, source_id), first_seen)
    )
    if seen.rowcount == 0:
        return False
    cursor = conn.execute(
        "INSERT OR IGNORE INTO baskets (boot_id, mono_ns, wall_ns, synced, driver, source_id, kind, payment,"
        " currency, total_cents, flagged, pos_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        basket,
    )
    if cursor.rowcount == 0:
        return False
    conn.executemany(
        "INSERT INTO basket_lines (basket_id, name, sku, pos_category, category, quantity, unit_price_cents,"
        " line_total_cents) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(cursor.lastrowid, *line) for line in lines],
    )
    return True


def oldest_synced_event_ns(conn: sqlite3.Connection) -> int | None:
    value = conn.execute("SELECT min(wall_ns) FROM events WHERE synced = 1").fetchone()[0]
    return None if value is None else int(value)


def rebase_unsynced(conn: sqlite3.Connection, boot_id: str, mono_ns: int, wall_ns: int) -> tuple[int, int]:
    """Give same-boot unsynced records wall = sync_wall - (sync_mono - mono); older boots keep theirs.

    Returns (re-based, from an earlier boot).
    """
    rebased = stale = 0
    for table in TIMED_TABLES:
        rebased += conn.execute(
            f"UPDATE {table} SET wall_ns = ? - (? - mono_ns), synced = 1 WHERE synced = 0 AND boot_id = ?",
            (wall_ns, mono_ns, boot_id),
        ).rowcount
        stale += conn.execute(f"UPDATE {table} SET synced = 1 WHERE synced = 0").rowcount
    return rebased, stale


def fix_windows(conn: sqlite3.Connection, next_open_ns: int, window_ns: int) -> int:
    """Fix each trusted record's window once; one that falls before `next_open_ns` counts there (late).

    Returns how many records were counted late.
    """
    late = 0
    for table in TIMED_TABLES:
        late += conn.execute(
            f"UPDATE {table} SET window_ns = ? WHERE window_ns IS NULL AND synced = 1 AND wall_ns < ?",
            (next_open_ns, next_open_ns),
        ).rowcount
        conn.execute(
            f"UPDATE {table} SET window_ns = wall_ns - (wall_ns % ?) WHERE window_ns IS NULL AND synced = 1",
            (window_ns,),
        )
    return late


def unfix_windows_from(conn: sqlite3.Connection, start_ns: int) -> int:
    """Forget the window of every record fixed to a window starting at or after `start_ns` (none of
    them is released yet), so the next settle fixes them on the grid now in force."""
    return sum(
        conn.execute(f"UPDATE {table} SET window_ns = NULL WHERE window_ns >= ?", (start_ns,)).rowcount
        for table in TIMED_TABLES
    )


def door_counts_in(conn: sqlite3.Connection, window_start_ns: int) -> list[tuple[str, int, int]]:
    """(door, entries, exits) of every door reading fixed to one window."""
    return [
        (str(d), int(e), int(x))
        for d, e, x in conn.execute("SELECT door, entries, exits FROM events WHERE window_ns = ?", (window_start_ns,))
    ]


def sale_lines_in(conn: sqlite3.Connection, window_start_ns: int) -> list[tuple[int, str, int, int]]:
    """(basket id, category, quantity, line total) of completed, unflagged sales fixed to one window."""
    return [
        (int(b), str(c), int(q), int(t))
        for b, c, q, t in conn.execute(
            "SELECT l.basket_id, l.category, l.quantity, l.line_total_cents FROM basket_lines l"
            " JOIN baskets b ON b.id = l.basket_id WHERE b.window_ns = ? AND b.kind = 'sale' AND b.flagged = ''",
            (window_start_ns,),
        )
    ]


def drop_released_older_than(conn: sqlite3.Connection, released_before_ns: int, cutoff_wall_ns: int) -> int:
    """Delete raw records of released windows older than the cutoff; presence is never released, so it
    goes by age alone. Returns how many events and baskets went."""
    dropped = conn.execute(
        "DELETE FROM events WHERE window_ns < ? AND wall_ns < ?", (released_before_ns, cutoff_wall_ns)
    ).rowcount
    conn.execute("DELETE FROM presence_events WHERE wall_ns < ?", (cutoff_wall_ns,))
    dropped += conn.execute(
        "DELETE FROM baskets WHERE window_ns < ? AND wall_ns < ?", (released_before_ns, cutoff_wall_ns)
    ).rowcount
    return dropped


def forget_source_ids(conn: sqlite3.Connection, cutoff_wall_ns: int, keep_at_most: int) -> int:
    """Drop remembered POS ids older than the cutoff, then the oldest beyond `keep_at_most`."""
    dropped = conn.execute("DELETE FROM pos_source_ids WHERE first_seen_wall_ns < ?", (cutoff_wall_ns,)).rowcount
    excess = conn.execute("SELECT count(*) FROM pos_source_ids").fetchone()[0] - keep_at_most
    if excess > 0:
        dropped += conn.execute(
            "DELETE FROM pos_source_ids WHERE digest IN"
            " (SELECT digest FROM pos_source_ids ORDER BY first_seen_wall_ns LIMIT ?)",
            (excess,),
        ).rowcount
    return dropped


def drop_oldest_released(conn: sqlite3.Connection, released_before_ns: int, limit: int) -> int:
    """Delete up to `limit` of the oldest door events of released windows; returns how many went."""
    return conn.execute(
        "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE window_ns < ? ORDER BY id LIMIT ?)",
        (released_before_ns, limit),
    ).rowcount


def door_totals_between(conn: sqlite3.Connection, lo_ns: int, hi_ns: int) -> dict[str, tuple[int, int]]:
    """door -> exact (entries, exits) read on a synchronised clock in [lo_ns, hi_ns): local figures only."""
    rows = conn.execute(
        "SELECT door, sum(entries), sum(exits) FROM events WHERE synced = 1 AND wall_ns >= ? AND wall_ns < ?"
        " GROUP BY door",
        (lo_ns, hi_ns),
    )
    return {str(d): (int(e), int(x)) for d, e, x in rows}


def sales_between(conn: sqlite3.Connection, lo_ns: int, hi_ns: int) -> tuple[int, int]:
    """Exact (baskets, revenue in cents) of completed, unflagged sales in [lo_ns, hi_ns): local figures only."""
    baskets, cents = conn.execute(
        "SELECT count(*), coalesce(sum(total_cents), 0) FROM baskets WHERE synced = 1 AND kind = 'sale'"
        " AND flagged = '' AND wall_ns >= ? AND wall_ns < ?",
        (lo_ns, hi_ns),
    ).fetchone()
    return int(baskets), int(cents)
