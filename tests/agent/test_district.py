"""The shop receives the hub's district benchmarks over MQTT and shows itself against them in status."""

from __future__ import annotations

import json
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.cli import main
from agent.demo.local_broker import LocalBroker
from agent.pipeline.publish import Publisher
from agent.pipeline.release import WindowReleaser
from agent.store import Store
from tests.conftest import ManualClock, make_config
from tests.mqtt_watch import Subscriber


def test_status_shows_my_shop_against_the_district_band(
    tmp_path: Path, broker: LocalBroker, clock: ManualClock, capsys
) -> None:  # type: ignore[no-untyped-def]
    config = make_config(tmp_path, broker.port)
    store = Store(config.db_path)
    releaser = WindowReleaser(config, store, clock)
    clock.advance(3600 + 121)
    releaser.tick()
    mine = json.loads(
        store.conn().execute("SELECT noisy_values FROM release_ledger WHERE stream = 'footfall_store'").fetchone()[0]
    )["all"]["entries"]
    publisher = Publisher(config, store)
    status_watch = Subscriber(broker.port, config.status_topic, client_id="birth-watch")
    publisher.start()
    status_watch.wait_for(lambda: bool(status_watch.messages()), 10, "the shop to come online (and subscribe)")
    hub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fake-hub")
    hub.connect("127.0.0.1", broker.port)
    hub.loop_start()
    benchmark = {
        "schema": "shopkeeper.hub-benchmark.v1",
        "coop": "riverside",
        "metric": "footfall",
        "streams": ["footfall-total/hourly"],
        "window": {"start": "2025-11-16T00:00:00Z", "end": "2025-11-16T01:00:00Z", "seconds": 3600},
        "k_min": 5,
        "n_shops": 7,
        "p25": mine - 10,
        "median": mine - 5,
        "p75": mine - 1,
        "privacy": {"post_processing": True},
    }
    hub.publish(
        "coop/v1/riverside/_hub/t1/benchmarks/footfall/2025-11-16T00:00:00Z", json.dumps(benchmark), qos=1, retain=True
    ).wait_for_publish(10)
    hub.publish("coop/v1/riverside/_hub/t1/benchmarks/footfall/bad", b"not json", qos=1).wait_for_publish(10)
    status_watch.wait_for(
        lambda: (
            store.conn().execute("SELECT count(*) FROM district_benchmarks").fetchone()[0] == 1
            and store.counters().get("hub_messages_ignored") == 1
        ),
        10,
        "the benchmark to arrive",
    )
    hub.loop_stop()
    publisher.stop()
    status_watch.close()
    store.close()
    assert main(["status", str(config.path)]) == 0
    out = capsys.readouterr().out
    assert "my shop vs district" in out and "above" in out and "(n=7)" in out
    assert main(["status", str(config.path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["district"][0]["mine"] == mine and report["district"][0]["position"] == "above"
