"""The hub's forecast task: the coop's model from the secure district totals, stored and published retained.

It reads ONE table, `secagg_district_totals` (what secure aggregation released: district sums with their
noise), and nothing per shop: not `summaries`, not `stores`, not any shop's released value. A test runs it
on a connection where every other table is forbidden. The model (hub/forecast_model.py) is then kept in
`coop_forecast_models` and published retained on coop/v1/<coop>/_hub/t1/forecast/model, once per change
of the newest released window, so every member (and a shop that joins later) gets the newest one. The
newest day of totals is also judged against the model of the days before it (hub/forecast_warning.py): a
district early warning, kept in `alerts` and published retained on coop/v1/<coop>/_hub/t1/alerts/district.
Computing it spends no privacy: it is post-processing of what the secure rounds released (and charged).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import zoneinfo
from collections.abc import Callable

from agent.contract import district_alert_topic, forecast_model_topic
from hub.contract import published_json
from hub.db import Connection
from hub.forecast_model import TABLE_COLUMNS, TotalsRow, district_model, model_rows
from hub.forecast_warning import district_warning

log = logging.getLogger(__name__)
HISTORY_NS = 400 * 86400 * 10**9  # a year and a bit: day-of-year effects need last year's same date
DISTRICT = "_district"  # the `store` of district alerts (no shop can be called this)

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
        rows = model_rows(
            conn.query(
                f"SELECT {TABLE_COLUMNS} FROM secagg_district_totals WHERE window_start_ns >= ?",
                (int(newest) - HISTORY_NS,),
            )
        )
        model = district_model(rows, self.timezone)
        model["coop"] = self.coop
        model["computed_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now or time.time()))
        payload = published_json(model)
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
        self._warn(conn, rows, publish, now or time.time())
        return True

    def _warn(self, conn: Connection, rows: list[TotalsRow], publish: Publish, now: float) -> None:
        """Judge the newest local day of district totals against the model made from the days before it."""
        zone = zoneinfo.ZoneInfo(self.timezone)
        hourly = [r for r in rows if str(r[1]) == "footfall/hourly"]
        if not hourly:
            return
        day_of = {int(r[2]): dt.datetime.fromtimestamp(int(r[2]) / 1e9, tz=zone).date() for r in hourly}
        newest_day = max(day_of.values())
        before = district_model([r for r in hourly if day_of[int(r[2])] < newest_day], self.timezone)
        stream = before["streams"].get("footfall/hourly")
        found = district_warning([r for r in hourly if day_of[int(r[2])] == newest_day], stream or {}, self.timezone)
        if found is None:
            return
        alert = {
            "schema": "shopkeeper.hub-alert.v1",
            "coop": self.coop,
            "store": DISTRICT,
            "raised_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
            "method": "district totals of secure aggregation against the coop forecast model",
            **found,
        }
        text = published_json(alert)
        with conn.transaction():
            inserted = conn.execute(
                "INSERT INTO alerts (alert_id, store, kind, window_start_s, payload, raised_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (alert_id) DO NOTHING",
                (
                    f"{DISTRICT}/{found['kind']}/{found['day']}/{found['since']}",
                    DISTRICT,
                    found["kind"],
                    None,
                    text,
                    now,
                ),
            )
        if inserted:
            publish(district_alert_topic(self.coop), text, True)
