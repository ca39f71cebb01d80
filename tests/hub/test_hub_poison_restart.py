"""Poison messages queued for the hub's persistent session while it is down are the first thing it receives
on restart; it refuses each with its reason and stores the honest summary behind them."""

from __future__ import annotations

import json
from pathlib import Path

from agent.demo.local_broker import LocalBroker
from devtools.loadgen import synthetic_summary
from hub.db import Database
from tests.hub.conftest import HubProcess, count, wait_for, write_hub_config
from tests.hub.test_hub_invalid_and_dashboard import publish_raw

DAY = 1_763_251_200  # 2025-11-16T00:00:00Z


def test_poison_redelivered_after_a_restart_is_refused_and_the_summary_behind_it_stored(tmp_path: Path) -> None:
    db_path = str(tmp_path / "hub.db")
    with LocalBroker(tmp_path / "broker") as broker:
        config = write_hub_config(tmp_path / "hub.toml", broker.port, db_path)
        first = HubProcess(config, tmp_path / "hub-1.log").start()
        first.wait_subscribed()
        assert first.stop() == 0  # its session (and subscription) outlives it on the broker
        topic, good = synthetic_summary("riverside", "s1", "front", DAY, 1, 7)
        doc = json.loads(good)
        poison = [
            b"[" * 1000 + b"]" * 1000,
            json.dumps({**doc, "values": {"entries": 10**30, "exits": 0}}).encode(),
            json.dumps({**doc, "seq": 2**62}).encode(),
            good.replace("2025-11-16T00:00:00Z", "2025-02-30T00:00:00Z").encode(),
            good.replace('"scale":"2/1"', '"scale":"0/1"').encode(),
            good.encode("utf-16"),
        ]
        status = json.dumps({"state": "online", "connection": 2**62, "coop": "riverside", "store": "s1", "agent": "x"})
        publish_raw(
            broker.port,
            [*((topic, p) for p in poison), ("coop/v1/riverside/s1/status", status.encode()), (topic, good.encode())],
        )
        second = HubProcess(config, tmp_path / "hub-2.log").start()
        try:
            database = Database(db_path)
            wait_for(lambda: count(database, "SELECT COUNT(*) FROM summaries") == 1, 30, "the honest summary")
            assert count(database, "SELECT SUM(refused) FROM rejected_summary WHERE store = 's1'") == len(poison) + 1
            assert count(database, "SELECT COUNT(*) FROM stores WHERE connection > 1") == 0
            assert second.alive()
        finally:
            assert second.stop() == 0
