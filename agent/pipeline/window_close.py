"""Window close: which window is due, and which window each raw record belongs to.

Windows lie on a fixed grid of the configured length. A window is due once its end plus the grace has
passed on a trusted clock; nothing is released while the clock is unsynchronised (DESIGN.md promise 7).
Records stamped before the clock synced are re-based from their monotonic stamps first, then every
trusted record's window is fixed once, so each record counts in exactly one window.

A change of window length (say 15 minutes to 1 hour) never drops a record: windows go on at the old
length until the next window start lies on the new grid (at the latest at midnight UTC, since both
lengths divide a day), then records already fixed to a not-yet-released window are fixed again on
the new grid. The grid length in force is kept in the database beside the next window start.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

from agent.clock import NS_PER_S, Clock, boot_id
from agent.config import AgentConfig
from agent.store import Store, raw_events, releases

log = logging.getLogger(__name__)

NEXT_WINDOW_KEY = "next_window_start_ns"
GRID_KEY = "window_grid_s"  # the window length the next window start lies on


class WindowClose:
    """Tracks the next window to release and settles raw records into windows."""

    def __init__(self, config: AgentConfig, store: Store, clock: Clock) -> None:
        self.store, self.clock = store, clock
        self.configured_ns = config.window_s * NS_PER_S
        self.grace_ns = config.grace_s * NS_PER_S
        self.boot_id = boot_id()
        self.window_ns = self._grid_in_force()
        next_start = self.store.get_state(NEXT_WINDOW_KEY)
        if (
            self.window_ns != self.configured_ns
            and next_start is not None
            and int(next_start) % self.configured_ns == 0
        ):
            with self.store.transaction() as conn:
                self._take_up_new_grid(conn, int(next_start))
            self.window_ns = self.configured_ns
        elif self.window_ns != self.configured_ns:
            log.warning(
                "window length changed from %ds to %ds: windows go on at %ds until the new grid is reached",
                self.window_ns // NS_PER_S,
                config.window_s,
                self.window_ns // NS_PER_S,
            )
        if clock.synced():
            self.ensure_first_window()

    def _grid_in_force(self) -> int:
        """The window length the stored next window start lies on; the configured one for a new store.

        Stores from before the grid was recorded fall back to the length of the last released window.
        """
        stored = self.store.get_state(GRID_KEY)
        if stored is not None:
            return int(stored) * NS_PER_S
        if self.store.get_state(NEXT_WINDOW_KEY) is None:
            return self.configured_ns
        length = releases.last_window_length_ns(self.store.conn())
        return self.configured_ns if length is None else length

    def ensure_first_window(self) -> None:
        """The first window holds the first trusted reading: now, or the oldest event re-based at sync."""
        if self.store.get_state(NEXT_WINDOW_KEY) is not None:
            return
        with self.store.transaction() as conn:
            if self.store.get_state(NEXT_WINDOW_KEY) is None:
                oldest = raw_events.oldest_synced_event_ns(conn)
                first_ns = min(self.clock.wall_ns(), oldest) if oldest is not None else self.clock.wall_ns()
                self.window_ns = self.configured_ns
                Store.set_state(conn, NEXT_WINDOW_KEY, str(first_ns // self.window_ns * self.window_ns))
                Store.set_state(conn, GRID_KEY, str(self.window_ns // NS_PER_S))

    def next_window_start(self) -> int:
        return int(self.store.get_state(NEXT_WINDOW_KEY) or 0)

    def run_due(self, release: Callable[[int, int], None]) -> int:
        """Call `release(start_ns, end_ns)` for every window whose end plus grace has passed, oldest first."""
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
            release(start, start + self.window_ns)
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

    def refresh(self) -> None:
        """After the release transaction committed: take up the grid it recorded."""
        self.window_ns = self._grid_in_force()

    def mark_released(self, conn: sqlite3.Connection, end_ns: int) -> None:
        """Inside the release transaction: the next window starts where this one ended, on the new grid
        once that is reached."""
        Store.set_state(conn, NEXT_WINDOW_KEY, str(end_ns))
        if self.window_ns != self.configured_ns and end_ns % self.configured_ns == 0:
            self._take_up_new_grid(conn, end_ns)
        else:
            Store.set_state(conn, GRID_KEY, str(self.window_ns // NS_PER_S))

    def _take_up_new_grid(self, conn: sqlite3.Connection, next_start_ns: int) -> None:
        """Records fixed to unreleased windows of the old grid are fixed again on the configured one."""
        unfixed = raw_events.unfix_windows_from(conn, next_start_ns)
        raw_events.fix_windows(conn, next_start_ns, self.configured_ns)
        Store.set_state(conn, GRID_KEY, str(self.configured_ns // NS_PER_S))
        log.info("window length change reaches the new grid; %d record(s) re-windowed", unfixed)
