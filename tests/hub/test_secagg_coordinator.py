"""The hub process's round coordinator against a real Mosquitto: a round left running by a killed hub is
aborted at the next start (the shops are told, its retained messages cleared), and a shop's bad round
message is refused alone, counted under its reason per store like any refusal."""

from __future__ import annotations

import base64
import json
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.coop.secagg.messages import decode
from agent.coop.secagg.primitives import IdentityKey
from agent.coop.secagg.transport import RoundResult
from agent.demo.local_broker import LocalBroker
from hub import secagg_store
from hub.db import Database
from tests.hub.conftest import HubProcess, wait_for, write_hub_config
from tests.hub.test_hub_window_lengths_end_to_end import hub_query


class Watcher:
    """Subscribes to every round topic and keeps the last payload per topic (retained ones included)."""

    def __init__(self, port: int) -> None:
        self.last: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("coop/v1/riverside/_hub/secagg/#", qos=1)
        self.client.loop_start()

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.last[message.topic] = bytes(message.payload)

    def get(self, topic: str) -> bytes | None:
        with self.lock:
            return self.last.get(topic)


def test_a_round_left_running_by_a_killed_hub_is_aborted_at_start(tmp_path: Path) -> None:
    members = {f"shop-{c}": base64.b64encode(IdentityKey().public_bytes).decode() for c in "abc"}
    roster = tmp_path / "roster.json"
    roster.write_text(json.dumps({"coop": "riverside", "members": members}))
    db_path = tmp_path / "hub.db"
    database = Database(str(db_path))
    database.migrate()
    conn = database.connect()
    cells = secagg_store.window_cells("footfall_store", "all", ("entries",), 1_794_823_200, 60, 2)
    with conn.transaction():
        secagg_store.plan_round(
            conn, secagg_store.PlannedRound("r-1", "footfall_store", cells, 2, 100, 1, Fraction(1, 8), 0, 0)
        )
        secagg_store.set_status(conn, "r-1", "input", 3)  # what a hub killed mid-round leaves behind
    conn.close()
    with LocalBroker(tmp_path / "broker") as broker:
        stale = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        stale.connect("127.0.0.1", broker.port)
        stale.loop_start()
        stale.publish("coop/v1/riverside/_hub/secagg/r-1/adverts", b"stale", qos=1, retain=True).wait_for_publish(5)
        config = write_hub_config(tmp_path / "hub.toml", broker.port, str(db_path))
        config.write_text(config.read_text() + f'\n[secagg]\nroster = "{roster}"\nstep_timeout_s = 2\npoll_s = 0.1\n')
        hub = HubProcess(config, tmp_path / "hub.log").start()
        try:
            hub.wait_subscribed()
            wait_for(lambda: hub_query(db_path, "SELECT status FROM secagg_rounds") == [("aborted",)], 20, "the abort")
            watcher = Watcher(broker.port)
            result_topic = "coop/v1/riverside/_hub/secagg/r-1/result"
            wait_for(lambda: watcher.get(result_topic) is not None, 10, "the retained result")
            result = decode(watcher.get(result_topic) or b"")
            assert isinstance(result, RoundResult) and result.outcome == "aborted" and "restarted" in result.reason
            time.sleep(0.5)  # retained messages arrive on subscribe: the cleared one must not be among them
            assert watcher.get("coop/v1/riverside/_hub/secagg/r-1/adverts") is None

            # A shop's message that is not what its step carries: refused alone, counted for that shop.
            with HubConnection(db_path) as c, c.transaction():
                secagg_store.plan_round(
                    c, secagg_store.PlannedRound("r-2", "footfall_store", cells, 2, 100, 1, Fraction(1, 8), 0, 0)
                )
            wait_for(lambda: watcher.get("coop/v1/riverside/_hub/secagg/r-2/config") is not None, 10, "r-2 opening")
            stale.publish("coop/v1/riverside/shop-a/secagg/r-2/advert", b'{"kind":"nonsense"}', qos=1).wait_for_publish(
                5
            )
            wait_for(
                lambda: (
                    hub_query(db_path, "SELECT store, reason, refused FROM rejected_summary")
                    == [("shop-a", "secure-aggregation message refused", 1)]
                ),
                10,
                "the refusal counted",
            )
            wait_for(lambda: hub_query(db_path, "SELECT status FROM secagg_rounds WHERE round_id = 'r-2'")
                     == [("aborted",)], 20, "r-2 to abort (no shop answered)")  # fmt: skip
            assert hub.alive()
        finally:
            hub.stop()
            stale.loop_stop()


class HubConnection:
    """A hub database connection as a context manager."""

    def __init__(self, db_path: Path) -> None:
        self.conn = Database(str(db_path)).connect()

    def __enter__(self) -> Any:
        return self.conn

    def __exit__(self, *_exc: object) -> None:
        self.conn.close()
