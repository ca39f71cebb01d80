"""Window close: which window is due, and which window each raw record belongs to.

Windows lie on a fixed grid of the configured length. A window is due once its end plus the grace has
passed on a trusted clock; nothing is released while the clock is unsynchronised (DESIGN.md promise 7).
Records stamped before the clock synced are re-based from their monotonic stamps first, then every
trusted record's window is fixed once, so each record counts in exactly one window.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

from agent.clock import NS_PER_S, Clock, boot_id
from agent.config import AgentConfig
from agent.store import Store, raw_events

log = logging.getLogger(__name__)

NEXT_WINDOW_KEY = "next_window_start_ns"


class WindowClose:
    """Tracks the next window to release and settles raw records into windows."""

    def __init__(self, config: AgentConfig, store: Store, clock: Clock) -> None:
        self.store, self.clock = store, clock
        self.window_ns = config.window_s * NS_PER_S
        self.grace_ns = config.grace_s * NS_PER_S
        self.boot_id = boot_id()
        if clock.synced():
            self.ensure_first_window()

    def ensure_first_window(self) -> None:
        """The first window holds the first trusted reading: now, or the oldest event re-based at sync."""
        if self.store.get_state(NEXT_WINDOW_KEY) is not None:
            return
        with self.store.transaction() as conn:
            if self.store.get_state(NEXT_WINDOW_KEY) is None:
                oldest = raw_events.oldest_synced_event_ns(conn)
                first_ns = min(self.clock.wall_ns(), oldest) if oldest is not None else self.clock.wall_ns()
                Store.set_state(conn, NEXT_WINDOW_KEY, str(first_ns // self.window_ns * self.window_ns))

    def next_window_start(self) -> int:
        return int(self.store.get_state(NEXT_WINDOW_KEY) or 0)

    def run_due(self, release: Callable[[int], None]) -> int:
        """Call `release(start_ns)` for every window whose end plus grace has passed, oldest first."""
        if not self.clock.synced():
            log.debug("clock not synchronised; holding window release")
            return 0
        if self.store.get_state(NEXT_WINDOW_KEY) is None:
            self.rebase()  # a first start on an unsynced clock: place its readings first
            self.ensure_first_window()
        self.settle_event_times()
        released = 0
        while True:
            start = self.next_window_start()
            if start + self.window_ns + self.grace_ns > self.clock.wall_ns():
                return released
            # Readings that arrive while a backlog of windows is released are settled at the next
            # tick (in their own window, or late in the oldest open one): never lost, never twice.
            release(start)
            released += 1

    def settle_event_times(self) -> None:
        """Re-base events stamped before the clock synced, then fix each event's window once.

        Re-basing uses the monotonic stamps: wall = sync_wall - (sync_mono - event_mono), valid within
        one boot. An event whose wall time falls in a window already released (a backward clock jump,
        or a reading that arrived after its window closed) counts in the oldest open window instead:
        late, but neither lost nor counted twice.
        """
        rebased, stale = self.rebase()
        next_open = self.next_window_start()
        with self.store.transaction() as conn:
            late = raw_events.fix_windows(conn, next_open, self.window_ns)
            if late:
                Store.bump_counter(conn, "events_counted_late", late)
        if rebased or stale:
            log.info(
                "clock synchronised: re-based %d event(s) from their monotonic stamps (%d from an "
                "earlier boot kept their wall time)",
                rebased,
                stale,
            )

    def rebase(self) -> tuple[int, int]:
        """Give events stamped on an unsynchronised clock their true wall time (same boot only)."""
        with self.store.transaction() as conn:
            rebased, stale = raw_events.rebase_unsynced(
                conn, self.boot_id, self.clock.monotonic_ns(), self.clock.wall_ns()
            )
            for name, count in (("events_rebased", rebased), ("events_from_unsynced_old_boot", stale)):
                if count:
                    Store.bump_counter(conn, name, count)
        return rebased, stale

    @staticmethod
    def mark_released(conn: sqlite3.Connection, end_ns: int) -> None:
        """Inside the release transaction: the next window to release starts where this one ended."""
        Store.set_state(conn, NEXT_WINDOW_KEY, str(end_ns))
