"""The hub's periodic work: sequence gaps, benchmarks, early warnings, publishing the results.

Each pass looks at what arrived since the previous pass (with a margin for batches that committed
late), so several workers may run it at once: every write is an idempotent upsert or an insert
keyed on a unique id.

Retained topics stay few (issue 15: one retained topic per window meant 2,088 retained messages after 29
days, all delivered to every new subscriber): a benchmark is published once on its per-window topic without
the retain flag (live subscribers get every window), and the newest benchmark of each metric and window length
is published retained on `.../benchmarks/<metric>[/<window name>]/latest`, so a new subscriber receives one
message per benchmark stream. Alerts are retained on one topic per store (the newest alert of that store).
POS sales (tier 2) give no district figure to members: each shop gets its own position, retained on its
private topic (hub/sales_position.py); the `latest` sales topics earlier hubs retained on tier 1 are
cleared at the first pass. Each store's watermark (`released_through`, hub/watermark.py) is retained on its
private topic whenever it moves.
Once a minute the hub logs what it stored, rejected and alerted in that minute (not one line per message).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from hub.benchmarks import BASKET_VALUE, SALES_SHARE, refresh_benchmarks, refresh_sales_benchmarks
from hub.config import HubConfig
from hub.contract import benchmark_topic, published_json
from hub.db import Connection, Database
from hub.early_warning import footfall_alerts, liveness_alerts
from hub.forecast_task import CoopForecast
from hub.queries import latest_benchmark_payload, sales_touched_since, touched_since
from hub.refusals import prune
from hub.storage import counters
from hub.watermark import watermark_messages

log = logging.getLogger(__name__)

Publish = Callable[[str, str, bool], object]  # topic, payload, retain
MARGIN_S = 5.0
ACTIVITY_LOG_S = 60.0
BENCHMARK_METRICS = ("footfall",)  # published to members; the sales quartiles stay in the database (admin)
T2_DERIVED_METRICS = (SALES_SHARE, BASKET_VALUE)


def latest_topic(coop: str, metric: str, window_s: int) -> str:
    """The one retained topic of a benchmark stream: its newest window."""
    return benchmark_topic(coop, metric, window_s, "latest")


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
        self._latest: dict[str, str] = {}  # latest topic -> payload this worker last retained there
        self._alerted = 0
        self._cleared = False  # the retained t1 sales topics of earlier hubs
        self._watermarks: dict[str, int] = {}  # store -> released_through (s) this worker last retained
        self._activity_at = time.monotonic()
        self._activity_counters: dict[str, int] | None = None
        self.coop_forecast = CoopForecast(config.coop, config.web.timezone)
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
        positions = refresh_sales_benchmarks(
            conn, self.config.coop, self.config.k_min, sales_touched_since(conn, self.since)
        )
        alerts = footfall_alerts(conn, self.config.coop, self.config.alerts, windows)
        alerts += liveness_alerts(conn, self.config.coop, self.config.alerts, now)
        for topic, payload in messages:
            self.publish(topic, payload, False)
        watermarks = watermark_messages(conn, self.config.coop, touched, self._watermarks, now)
        for topic, payload in alerts + positions + watermarks:
            self.publish(topic, payload, True)
        if not self._cleared:
            self._clear_t2_derived(conn)
        latest = self._publish_latest(conn) if messages else 0
        latest += int(self.coop_forecast.refresh(conn, self.publish, now))
        self._alerted += len(alerts)
        prune(conn, now)
        self.since = start
        self.log_activity(conn)
        return len(messages) + len(alerts) + len(positions) + len(watermarks) + latest

    def _clear_t2_derived(self, conn: Connection) -> None:
        """Delete the retained tier-1 sales quartiles an earlier hub left (an empty retained message)."""
        lengths = [int(r[0]) for r in conn.query("SELECT DISTINCT window_seconds FROM benchmarks")]
        for metric in T2_DERIVED_METRICS:
            for window_s in lengths:
                self.publish(latest_topic(self.config.coop, metric, window_s), "", True)
        self._cleared = True

    def _publish_latest(self, conn: Connection) -> int:
        """Retain the newest benchmark of every metric and window length (from the database, so a late or
        stale window never replaces a newer one, whichever worker computed it)."""
        lengths = [int(r[0]) for r in conn.query("SELECT DISTINCT window_seconds FROM benchmarks")]
        sent = 0
        for metric in BENCHMARK_METRICS:
            for window_s in lengths:
                payload = latest_benchmark_payload(conn, metric, window_s=window_s)
                if payload is None:
                    continue
                topic = latest_topic(self.config.coop, metric, window_s)
                text = published_json(payload)
                if self._latest.get(topic) != text:
                    self.publish(topic, text, True)
                    self._latest[topic] = text
                    sent += 1
        return sent

    def log_activity(self, conn: Connection, force: bool = False) -> None:
        """One line per minute: messages stored, duplicates, rejected and alerts raised since the last line."""
        if not force and time.monotonic() - self._activity_at < ACTIVITY_LOG_S:
            return
        now_counters = counters(conn)
        before = self._activity_counters or {}
        delta = {k: now_counters.get(k, 0) - before.get(k, 0) for k in ("stored", "duplicates", "rejected")}
        if self._activity_counters is not None or force:
            log.info(
                "hub activity in the last %.0f s: stored %d, duplicates %d, rejected %d, alerts raised %d",
                time.monotonic() - self._activity_at,
                delta["stored"],
                delta["duplicates"],
                delta["rejected"],
                self._alerted,
            )
        self._activity_counters, self._alerted, self._activity_at = now_counters, 0, time.monotonic()

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
