"""The hub's periodic work: sequence gaps, benchmarks, early warnings, publishing the results.

Each pass looks at what arrived since the previous pass (with a margin for batches that committed
late), so several workers may run it at once: every write is an idempotent upsert or an insert
keyed on a unique id, and a retained message that was overwritten by a stale one is fixed on the
next pass that sees its window.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from hub.benchmarks import refresh_benchmarks, refresh_sales_benchmarks
from hub.config import HubConfig
from hub.db import Connection, Database
from hub.early_warning import footfall_alerts, liveness_alerts
from hub.queries import sales_touched_since, touched_since
from hub.refusals import prune

log = logging.getLogger(__name__)

Publish = Callable[[str, str], object]
MARGIN_S = 5.0


def reconcile_gaps(conn: Connection, store: str, now: float) -> tuple[int, int]:
    """Bring seq_gaps in line with the stored sequence numbers; returns (opened, closed)."""
    # prev + 1 and seq - 1 stay far inside 64 bits: stored sequence numbers are at most 2^53 - 1 (agent/contract).
    rows = conn.query(
        "SELECT prev + 1, seq - 1 FROM (SELECT seq, LAG(seq, 1, 0) OVER (ORDER BY seq) AS prev"
        " FROM summaries WHERE store = ?) t WHERE seq > prev + 1",
        (store,),
    )
    current = {(int(a), int(b)) for a, b in rows}
    opened = closed = 0
    with conn.transaction():
        known = {
            (int(a), int(b))
            for a, b in conn.query(
                "SELECT first_missing, last_missing FROM seq_gaps WHERE store = ? AND closed_at IS NULL", (store,)
            )
        }
        for first, last in sorted(known - current):
            closed += conn.execute(
                "UPDATE seq_gaps SET closed_at = ? WHERE store = ? AND first_missing = ? AND last_missing = ?"
                " AND closed_at IS NULL",
                (now, store, first, last),
            )
        for first, last in sorted(current - known):
            opened += conn.execute(
                "INSERT INTO seq_gaps (store, first_missing, last_missing, opened_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (store, first_missing, last_missing) DO NOTHING",
                (store, first, last, now),
            )
    return opened, closed


class PeriodicTasks:
    """Runs `run_once` every `task_interval_s` on its own thread and its own connection."""

    def __init__(self, config: HubConfig, database: Database, publish: Publish) -> None:
        self.config, self.database, self.publish = config, database, publish
        self.since = 0.0  # the first pass looks at everything
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="hub-tasks", daemon=True)

    def run_once(self, conn: Connection, now: float | None = None) -> int:
        """One pass; returns how many messages it published."""
        now = time.time() if now is None else now
        start = now - MARGIN_S
        windows, touched = touched_since(conn, self.since)
        for store in touched:
            reconcile_gaps(conn, store, now)
        messages = refresh_benchmarks(conn, self.config.coop, self.config.k_min, windows)
        messages += refresh_sales_benchmarks(
            conn, self.config.coop, self.config.k_min, sales_touched_since(conn, self.since)
        )
        messages += footfall_alerts(conn, self.config.coop, self.config.alerts, windows)
        messages += liveness_alerts(conn, self.config.coop, self.config.alerts, now)
        for topic, payload in messages:
            self.publish(topic, payload)
        prune(conn, now)
        self.since = start
        return len(messages)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        conn: Connection | None = None
        while not self._stop.is_set():
            try:
                conn = conn or self.database.connect()
                self.run_once(conn)
            except Exception:
                log.exception("periodic hub tasks failed; retrying next interval")
                if conn is not None:
                    conn.close()
                conn = None
            self._stop.wait(self.config.task_interval_s)
        if conn is not None:
            conn.close()
