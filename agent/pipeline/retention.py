"""Bounded storage: raw data is dropped oldest first, only once released; unsent summaries never.

Raw events are deleted when they are older than the configured age, or, while the database holds more
than the configured bytes, oldest first. Only events of windows that were already released may go; each
drop is counted by reason. If the bound still cannot be met (everything left is unreleased raw data or
summaries not yet delivered), the agent keeps them all and says so in status, metrics and logs.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3

from agent.clock import NS_PER_S, Clock
from agent.store import Store, licensing, outbox, raw_events

log = logging.getLogger(__name__)

CHUNK = 5_000
DELIVERED_KEEP_S = 7 * 86400  # delivered summaries stay a week for `status`; the ledger keeps the values for ever
# POS record ids outlive the raw baskets by far, so that a late duplicate is never counted again (no
# vendor retries or replays for anywhere near this long); their own bound is age, then count (~40 B each).
SOURCE_IDS_KEEP_S = 400 * 86400
SOURCE_IDS_MAX = 2_000_000


@dataclasses.dataclass
class RetentionReport:
    dropped_age: int = 0
    dropped_size: int = 0
    pruned_delivered: int = 0
    used_bytes: int = 0
    over_bound: bool = False


class Retention:
    """Applies the age and size bounds; call `run()` periodically (the scheduler does)."""

    def __init__(self, store: Store, clock: Clock, max_age_s: int, max_bytes: int) -> None:
        self.store, self.clock = store, clock
        self.max_age_ns = max_age_s * NS_PER_S
        self.max_bytes = max_bytes
        self._warned = False

    @staticmethod
    def _note_gone(
        conn: sqlite3.Connection, where: str, args: tuple[int, ...], tables: tuple[str, ...] = ("events", "baskets")
    ) -> None:
        newest = licensing.newest_window_to_drop(conn, where, args, tables)
        if newest is None:
            return
        before = Store.state_in(conn, licensing.RAW_GONE_KEY)
        if before is None or int(before) < newest:
            Store.set_state(conn, licensing.RAW_GONE_KEY, str(newest))

    def run(self) -> RetentionReport:
        report = RetentionReport()
        released_before = int(self.store.get_state("next_window_start_ns") or 0)
        now = self.clock.wall_ns()
        with self.store.transaction() as conn:
            # What a licensing query can still be asked about (agent/licensing): the newest window whose
            # raw data any delete below touches is remembered, in the same transaction as the delete.
            self._note_gone(conn, "window_ns < ? AND wall_ns < ?", (released_before, now - self.max_age_ns))
            report.dropped_age = raw_events.drop_released_older_than(conn, released_before, now - self.max_age_ns)
            report.pruned_delivered = outbox.prune_delivered(conn, now - DELIVERED_KEEP_S * NS_PER_S)
            if report.dropped_age:
                Store.bump_counter(conn, "dropped_raw_age", report.dropped_age)
            forgotten = raw_events.forget_source_ids(conn, now - SOURCE_IDS_KEEP_S * NS_PER_S, SOURCE_IDS_MAX)
            if forgotten:
                Store.bump_counter(conn, "pos_source_ids_forgotten", forgotten)
        while self.store.used_bytes() > self.max_bytes:
            with self.store.transaction() as conn:
                self._note_gone(
                    conn,
                    "id IN (SELECT id FROM events WHERE window_ns < ? ORDER BY id LIMIT ?)",
                    (released_before, CHUNK),
                    ("events",),
                )
                dropped = raw_events.drop_oldest_released(conn, released_before, CHUNK)
                if dropped:
                    Store.bump_counter(conn, "dropped_raw_size", dropped)
            if not dropped:
                break
            report.dropped_size += dropped
            self.store.give_back_free_pages()
        self.store.give_back_free_pages()
        report.used_bytes = self.store.used_bytes()
        report.over_bound = report.used_bytes > self.max_bytes
        with self.store.transaction() as conn:
            Store.set_state(conn, "disk_bound_reached", "1" if report.over_bound else "0")
        if report.over_bound and not self._warned:
            log.warning(
                "storage bound of %d bytes reached (%d used): only unreleased raw events and undelivered "
                "summaries are left, and none of them is dropped",
                self.max_bytes,
                report.used_bytes,
            )
        self._warned = report.over_bound
        if report.dropped_age or report.dropped_size:
            log.info(
                "retention dropped %d raw event(s) by age and %d by size (all from released windows)",
                report.dropped_age,
                report.dropped_size,
            )
        return report
