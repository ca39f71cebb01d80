"""After 30 simulated days, a new subscriber to coop/v1/# gets at most one retained message per stream and store.

Real Mosquitto and a real hub process; the load generator publishes the 30 days. The retained set is read by
subscribing, then publishing a marker on a topic of our own: the broker sends retained messages before anything
published after the subscription, so when the marker arrives every retained message has arrived.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.demo.local_broker import LocalBroker
from devtools.loadgen import FastPublisher, shop_days
from hub.db import Database
from tests.hub.conftest import HubProcess, count, wait_for, write_hub_config

DAY = 1_763_251_200  # 2025-11-16T00:00:00Z
DAYS, SHOPS = 30, 3


def retained_messages(port: int) -> dict[str, bytes]:
    retained: dict[str, bytes] = {}
    done = threading.Event()
    marker = "coop/v1/riverside/test-marker/status"
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="late-subscriber", protocol=mqtt.MQTTv5)

    def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        if message.topic == marker:
            done.set()
        elif message.retain:
            retained[message.topic] = bytes(message.payload)

    def on_subscribe(c: mqtt.Client, *_a: object) -> None:
        c.publish(marker, b"{}", qos=1)

    client.on_message = on_message
    client.on_subscribe = on_subscribe
    client.connect("127.0.0.1", port)
    client.subscribe("coop/v1/#", qos=1)
    client.loop_start()
    try:
        assert done.wait(30), "the marker never arrived"
    finally:
        client.loop_stop()
        client.disconnect()
    return retained


@pytest.mark.slow
def test_a_new_subscriber_gets_one_retained_message_per_stream_and_store(tmp_path: Path) -> None:
    db_path = str(tmp_path / "hub.db")
    with LocalBroker(tmp_path / "broker") as broker:
        cfg = write_hub_config(tmp_path / "hub.toml", broker.port, db_path, k_min=3)
        hub = HubProcess(cfg, tmp_path / "hub.log").start()
        try:
            hub.wait_subscribed()
            messages = list(shop_days("riverside", SHOPS, DAY, hours=24 * DAYS, doors=("front",)))
            publisher = FastPublisher(broker.port)
            assert publisher.publish_all(messages) == len(messages)
            publisher.close()
            database = Database(db_path)
            wait_for(
                lambda: count(database, "SELECT COUNT(*) FROM benchmarks WHERE metric = 'footfall'") == 24 * DAYS,
                120,
                "a footfall benchmark for every window of the 30 days",
            )
            newest = DAY + (24 * DAYS - 1) * 3600
            latest = "coop/v1/riverside/_hub/t1/benchmarks/footfall/latest"
            # the hub retains its newest benchmark last; wait for it rather than for a fixed time
            wait_for(lambda: _latest_window(broker.port, latest) == newest, 60, "the latest benchmark to be retained")
            retained = retained_messages(broker.port)
        finally:
            hub.stop()
    benchmarks = [t for t in retained if "/benchmarks/" in t]
    assert benchmarks == [latest], benchmarks  # not one per window: 720 windows, one retained message
    # Per stream and store: a topic is one stream of one store, so at most one message per topic ...
    per_stream_store: dict[tuple[str, str], int] = {}
    for topic in retained:
        parts = topic.split("/")
        key = (parts[3], "/".join(parts[4:-1]) if "/benchmarks/" in topic else "/".join(parts[4:]))
        per_stream_store[key] = per_stream_store.get(key, 0) + 1
    assert max(per_stream_store.values()) == 1, per_stream_store
    # ... and the whole retained set stays small: the latest benchmark plus at most one alert per store.
    assert len(retained) <= 1 + SHOPS, sorted(retained)


def _latest_window(port: int, topic: str) -> int | None:
    from hub.contract import parse_iso

    payload = retained_messages(port).get(topic)
    return parse_iso(json.loads(payload)["window"]["start"]) if payload else None
