"""The hub's forecast task: the coop's model from the secure district totals, stored and published retained.

It reads ONE table, `secagg_district_totals` (what secure aggregation released: district sums with their
noise), and nothing per shop: not `summaries`, not `stores`, not any shop's released value. A test runs it
on a connection where every other table is forbidden. The model (hub/forecast_model.py) is then kept in
`coop_forecast_models` and published retained on coop/v1/<coop>/_hub/t1/forecast/model, once per change
of the newest released window, so every member (and a shop that joins later) gets the newest one.
Computing it spends no privacy: it is post-processing of what the secure rounds released (and charged).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from agent.contract import forecast_model_topic
from hub.db import Connection
from hub.forecast_model import district_model

log = logging.getLogger(__name__)
HISTORY_NS = 400 * 86400 * 10**9  # a year and a bit: day-of-year effects need last year's same date
TOTALS_COLUMNS = "round_id, stream, window_start_ns, window_ns, total, noise_variance, shops"

Publish = Callable[[str, str, bool], object]


class CoopForecast:
    """Recomputes and republishes the model when the secure totals moved on (one instance per hub worker)."""

    def __init__(self, coop: str, timezone: str) -> None:
        self.coop, self.timezone = coop, timezone
        self._newest: int | None = None
        self._missing_logged = False

    def refresh(self, conn: Connection, publish: Publish, now: float | None = None) -> bool:
        """One pass; True when a new model was published."""
        try:
            newest = conn.query("SELECT MAX(window_start_ns) FROM secagg_district_totals")[0][0]
        except Exception as exc:  # the secure-aggregation tables are not there (yet): nothing to model
            if not self._missing_logged:
                log.info("no coop forecast model: secagg_district_totals cannot be read (%s)", str(exc)[:120])
                self._missing_logged = True
            return False
        if newest is None or newest == self._newest:
            return False
        rows = conn.query(
            f"SELECT {TOTALS_COLUMNS} FROM secagg_district_totals WHERE window_start_ns >= ?",
            (int(newest) - HISTORY_NS,),
        )
        model = district_model(rows, self.timezone)
        model["coop"] = self.coop
        model["computed_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now or time.time()))
        payload = json.dumps(model, sort_keys=True, separators=(",", ":"))
        with conn.transaction():
            conn.execute(
                "INSERT INTO coop_forecast_models (newest_window_ns, computed_at, rows_used, payload)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (newest_window_ns) DO UPDATE SET computed_at = excluded.computed_at,"
                " rows_used = excluded.rows_used, payload = excluded.payload",
                (int(newest), now or time.time(), len(rows), payload),
            )
        publish(forecast_model_topic(self.coop), payload, True)
        self._newest = int(newest)
        log.info("coop forecast model published from %d secure district totals", len(rows))
        return True
