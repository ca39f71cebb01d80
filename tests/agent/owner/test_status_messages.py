"""The retained status messages that leave the shop are recorded for the owner's "what left", as sent."""

from __future__ import annotations

import json
from pathlib import Path

from agent.demo.local_broker import LocalBroker
from agent.pipeline import status_log
from agent.pipeline.publish import Publisher
from agent.store import Store
from tests.conftest import make_config
from tests.mqtt_watch import Subscriber


def test_birth_goodbye_and_a_lost_sessions_will_are_recorded_as_sent(tmp_path: Path, broker: LocalBroker) -> None:
    config = make_config(tmp_path, broker.port)
    store = Store(config.db_path)
    sub = Subscriber(broker.port, config.status_topic, client_id="status-watch")
    first = Publisher(config, store)
    first.start()
    sub.wait_for(lambda: len(sub.messages()) == 1, 10, "the birth message")
    first.stop()
    sub.wait_for(lambda: len(sub.messages()) == 2, 10, "the goodbye")
    recorded = status_log.sent(store.conn())
    assert [(m["topic"], m["payload"].encode()) for m in recorded] == [(t, p) for t, p, _r in sub.messages()]
    assert [m["how"] for m in recorded] == ["agent", "agent"]

    # A session that ended without its goodbye (kill -9): the broker sent the will; the next start says so.
    with store.transaction() as conn:
        online_2 = recorded[0]["payload"].replace('"connection": 1', '"connection": 2')
        status_log.record(conn, config.status_topic, online_2, 1, "agent")
        Store.set_state(conn, "mqtt_connections", "2")
    second = Publisher(config, store)
    second.start()
    sub.wait_for(lambda: len(sub.messages()) == 3, 10, "the next birth message")
    second.stop()
    kinds = [
        (m["how"], json.loads(m["payload"])["state"], json.loads(m["payload"])["connection"])
        for m in status_log.sent(store.conn())
    ]
    assert kinds[3:] == [("broker", "offline", 2), ("agent", "online", 3), ("agent", "offline", 3)]
    sub.close()
    store.close()
