"""What the coop's hub sends back to this shop: district benchmarks and alerts, kept for `status`.

Benchmarks are computed by the hub from released (noisy) values only, so receiving and showing them
costs this shop nothing in privacy. Messages that do not parse are ignored and counted.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from agent.clock import NS_PER_S
from agent.config import AgentConfig
from agent.contract import alert_topic, benchmark_filter, forecast_model_topic
from agent.store import Store

log = logging.getLogger(__name__)


def subscriptions(config: AgentConfig) -> list[str]:
    """The hub topics this shop listens to (the broker's ACL lets members read them): benchmarks of its own
    window length only, since it compares them with its own windows."""
    return [
        benchmark_filter(config.coop, config.window_s),
        alert_topic(config.coop, config.store),
        forecast_model_topic(config.coop),
    ]


def record(store: Store, topic: str, payload: bytes) -> bool:
    """Store one hub message; returns False (and stores nothing) when it is not one we understand."""
    try:
        message = json.loads(payload)
        if topic.endswith("/forecast/model"):
            return _record_forecast_model(store, message)
        if "/alerts/" in topic:
            with store.transaction() as conn:
                conn.execute(
                    "INSERT INTO hub_alerts VALUES (?, ?, ?) ON CONFLICT(topic) DO UPDATE SET"
                    " payload = excluded.payload, received_wall_ns = excluded.received_wall_ns",
                    (topic, json.dumps(message), time.time_ns()),
                )
            return True
        row = (
            str(message["metric"]),
            str(message["window"]["start"]),
            int(message["n_shops"]),
            float(message["p25"]),
            float(message["median"]),
            float(message["p75"]),
            time.time_ns(),
        )
    except (ValueError, KeyError, TypeError) as exc:
        log.debug("ignored hub message on %s: %s", topic, exc)
        with store.transaction() as conn:
            Store.bump_counter(conn, "hub_messages_ignored")
        return False
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO district_benchmarks VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(metric, window_start)"
            " DO UPDATE SET n_shops = excluded.n_shops, p25 = excluded.p25, median = excluded.median,"
            " p75 = excluded.p75, received_wall_ns = excluded.received_wall_ns",
            row,
        )
    return True


def my_shop_vs_district(store: Store, limit: int = 24) -> list[dict[str, Any]]:
    """This shop's released footfall next to the district band, newest windows first."""
    rows = (
        store.conn()
        .execute(
            "SELECT window_start, n_shops, p25, median, p75 FROM district_benchmarks WHERE metric = 'footfall'"
            " ORDER BY window_start DESC LIMIT ?",
            (limit,),
        )
        .fetchall()
    )
    mine = {}
    for start_ns, stream, values in store.conn().execute(
        "SELECT window_start_ns, stream, noisy_values FROM release_ledger"
        " WHERE stream IN ('footfall_store', 'footfall_door')"
    ):
        released = json.loads(values)
        total = sum(v["entries"] for v in released.values())
        key = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start_ns // NS_PER_S))
        if stream == "footfall_store" or key not in mine:
            mine[key] = total
    out = []
    for window, n_shops, p25, median, p75 in rows:
        value = mine.get(window)
        position = None if value is None else ("below" if value < p25 else "above" if value > p75 else "within")
        out.append(
            {
                "window": window,
                "mine": value,
                "district_p25": p25,
                "district_median": median,
                "district_p75": p75,
                "n_shops": n_shops,
                "position": position,
            }
        )
    return out


def _record_forecast_model(store: Store, message: Any) -> bool:
    """Keep the coop's forecast model for the next fit (post-processing of secure sums: no privacy cost)."""
    from agent.store.forecasts import store_coop_model

    if not isinstance(message, dict) or message.get("schema") != "shopkeeper.coop-forecast.v1":
        raise ValueError("not a shopkeeper.coop-forecast.v1 model")
    if not isinstance(message.get("streams"), dict):
        raise ValueError("the forecast model has no streams")
    with store.transaction() as conn:
        store_coop_model(conn, json.dumps(message), time.time_ns())
    return True
