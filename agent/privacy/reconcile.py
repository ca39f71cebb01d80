"""Reconcile the database with the release journal (and the coop's watermark) before anything is released.

Run at start, and again after a failed journal append, before the first window is drawn:
- a release in the journal but not in the database (a rolled-back WAL, a restored backup, a fresh
  database after a corrupt one was moved aside) is put back with its stored values: its ledger row,
  its spend and its outbox messages, which are sent again under their own message ids (the hub
  de-duplicates). Its window is never drawn again;
- a release in the database but not in the journal (a database from before the journal existed) is
  added to the journal;
- the same (window, stream) with different contents in both is a disagreement: reported, never
  "fixed" by drawing anew;
- the next window to release starts after the newest journaled window, whatever the clock says;
- then the coop's watermark (agent/coop/watermark.py; `apply_watermark`): a window at or before it is
  released, whatever the database and the journal say. Those the two still hold were re-queued above
  with their stored values; any other (both lost: a fresh disk, a restored data folder) is marked lost in
  `lost_windows` and skipped, loudly (logged, counted, /health), never drawn.
`problems` lists every disagreement for `shopkeeper ledger verify`, which fails on any.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import time

from agent.privacy.journal import JournalEntry, ReleaseJournal
from agent.store import Store, releases

log = logging.getLogger(__name__)

NEXT_WINDOW_KEY = "next_window_start_ns"
LOST_COUNTER = "windows_lost_below_watermark"


@dataclasses.dataclass
class ReconcileReport:
    restored: int = 0  # releases put back into the database from the journal
    journaled: int = 0  # releases of the database added to the journal
    disagreements: list[str] = dataclasses.field(default_factory=list)


def entries_for_ledger_ids(conn: sqlite3.Connection, ledger_ids: list[int]) -> list[JournalEntry]:
    """The journal entries of ledger rows already written (in this transaction or earlier)."""
    entries = []
    for ledger_id in ledger_ids:
        release, spend, messages = releases.release_record(conn, ledger_id)
        entries.append(JournalEntry(release, spend, tuple(messages)))
    return entries


def problems(store: Store, journal: ReleaseJournal) -> list[str]:
    """Every way the database and the journal disagree (empty: they agree); changes neither."""
    entries = journal.read(repair=False)
    in_db = releases.ledger_keys(store.conn())
    found = []
    for entry in entries:
        db_row = in_db.get(entry.key)
        when = f"window starting {entry.release['window_start_ns']} ns, stream {entry.key[1]}"
        if db_row is None:
            found.append(f"{when}: in the release journal but not in the database (rolled back or restored)")
        elif db_row[1] != entry.release["hash"]:
            found.append(f"{when}: the database and the journal hold different releases")
    journaled = {e.key for e in entries}
    for key in in_db:
        if key not in journaled:
            found.append(f"window starting {key[0]} ns, stream {key[1]}: in the database but not in the journal")
    return found


def reconcile(store: Store, journal: ReleaseJournal) -> ReconcileReport:
    """Make the database hold every journaled release and the journal every database release."""
    entries = journal.read()
    report = ReconcileReport()
    with store.transaction() as conn:
        in_db = releases.ledger_keys(conn)
        for entry in entries:
            db_row = in_db.get(entry.key)
            if db_row is None:
                clashes = releases.restore_release(conn, entry.release, entry.spend, list(entry.messages))
                report.restored += 1
                if clashes:
                    report.disagreements.append(
                        f"window {entry.key[0]} stream {entry.key[1]}: {clashes} message(s) could not be queued"
                        " again (their seq or message id is taken by another row)"
                    )
            elif db_row[1] != entry.release["hash"]:
                report.disagreements.append(
                    f"window {entry.key[0]} stream {entry.key[1]}: database and journal differ; the stored release"
                    " stands and nothing is drawn again"
                )
        journaled = {e.key for e in entries}
        missing = [
            ledger_id for key, (ledger_id, _h) in sorted(in_db.items(), key=lambda kv: kv[1][0]) if key not in journaled
        ]
        if missing:
            # Appended before COMMIT: if this transaction rolls back, the next reconcile finds them in
            # the journal and restores them, which is the same state.
            journal.append(entries_for_ledger_ids(conn, missing))
            report.journaled = len(missing)
        # Query answers cover past date ranges, not the hourly grid: they never move the next window.
        newest_end = max(
            (int(e.release["window_end_ns"]) for e in entries if releases.is_grid_stream(e.key[1])), default=None
        )
        current = store.get_state(NEXT_WINDOW_KEY)
        if newest_end is not None and (current is None or int(current) < newest_end):
            Store.set_state(conn, NEXT_WINDOW_KEY, str(newest_end))
        if report.restored:
            Store.bump_counter(conn, "releases_restored_from_journal", report.restored)
    if report.restored:
        log.error(
            "the database was missing %d release(s) that the release journal holds (a damaged write-ahead log,"
            " a restored backup or a new database); they were put back with their stored values and will be sent"
            " again under their own message ids: nothing was drawn again",
            report.restored,
        )
    if report.journaled:
        log.info("added %d earlier release(s) of the database to the release journal", report.journaled)
    for problem in report.disagreements:
        log.error("%s", problem)
    return report


def apply_watermark(store: Store, watermark_ns: int, window_ns: int) -> int:
    """Move the next window to release past the coop's watermark; returns how many windows were lost.

    Every window from the next one to release up to the watermark (rounded up to the window grid in force)
    was released before, by this store, and its values are in neither the database nor the journal (those
    were restored by `reconcile` first and moved the next window past them): it is recorded as lost,
    counted, and skipped. It is never drawn again: that would be a second draw of a released window.
    """
    through = -(-watermark_ns // window_ns) * window_ns  # the first window start on the grid at or after it
    with store.transaction() as conn:
        row = conn.execute("SELECT value FROM agent_state WHERE key = ?", (NEXT_WINDOW_KEY,)).fetchone()
        current = int(row[0]) if row is not None else None
        if current is not None and current >= through:
            return 0
        windows = 0 if current is None else (through - current) // window_ns
        if current is not None and windows:
            conn.execute(
                "INSERT INTO lost_windows VALUES (?, ?, ?, ?, ?) ON CONFLICT (from_ns) DO UPDATE SET"
                " to_ns = max(to_ns, excluded.to_ns), windows = windows + excluded.windows",
                (current, through, windows, watermark_ns, time.time_ns()),
            )
            Store.bump_counter(conn, LOST_COUNTER, windows)
        Store.set_state(conn, NEXT_WINDOW_KEY, str(through))
    if windows:
        log.error(
            "the coop's watermark says this store released every window up to %s, but neither the database nor"
            " the release journal holds %d of them (both lost: a new disk or a restored data folder): they are"
            " marked lost and skipped, never drawn again (`shopkeeper ledger` lists them)",
            _iso(watermark_ns),
            windows,
        )
    return windows


def lost_windows(conn: sqlite3.Connection) -> list[tuple[int, int, int]]:
    """(from_ns, to_ns, windows) of every run of windows skipped as lost, oldest first."""
    return [(int(a), int(b), int(n)) for a, b, n in conn.execute(
        "SELECT from_ns, to_ns, windows FROM lost_windows ORDER BY from_ns")]  # fmt: skip


def watermark_problems(conn: sqlite3.Connection, watermark_ns: int | None) -> list[str]:
    """Disagreement between the coop's watermark and what the database holds or recorded as lost."""
    if watermark_ns is None:
        return []
    row = conn.execute("SELECT max(window_end_ns) FROM release_ledger").fetchone()
    newest = int(row[0]) if row and row[0] is not None else 0
    newest = max([newest, *(to_ns for _f, to_ns, _n in lost_windows(conn))])
    if newest >= watermark_ns:
        return []
    return [
        f"the coop's watermark says this store released every window up to {_iso(watermark_ns)}, but the database"
        f" holds releases (or lost windows) only up to {_iso(newest) if newest else 'nothing'}: the database"
        " forgot releases the coop holds (start the agent: it reconciles before releasing)"
    ]


def _iso(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns // 1_000_000_000))
