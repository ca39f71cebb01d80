"""`shopkeeper forecast CONFIG [--json] [--refresh]`: the stored forecast in plain words or JSON."""

from __future__ import annotations

import json
import time

from agent.clock import AcceleratedClock
from agent.config import AgentConfig
from agent.forecast import job, words
from agent.owner.localtime import LocalZone
from agent.store import Store


def _now_ns() -> int:
    accelerated = AcceleratedClock.from_env()  # the demo and tests run on an accelerated clock
    return accelerated.wall_ns() if accelerated is not None else time.time_ns()


def forecast(config: AgentConfig, refresh: bool = False, as_json: bool = False) -> int:
    """Print the forecast; with `refresh`, fit first. Exit 1 when a requested refresh failed."""
    zone_name = config.owner_page.timezone if config.owner_page else ""
    zone = LocalZone(zone_name)
    store = Store(config.db_path)
    try:
        now = _now_ns()
        outcome = job.run_fit(store, config.db_path, zone_name, now) if refresh else None
        conn = store.conn()
        report = words.report(conn, zone, now)
        row = conn.execute("SELECT currency FROM baskets GROUP BY currency ORDER BY count(*) DESC").fetchone()
    finally:
        store.close()
    print(
        json.dumps(report, indent=2, sort_keys=True) if as_json else words.format_report(report, row[0] if row else "")
    )
    return 1 if outcome is not None and not outcome.ok else 0
