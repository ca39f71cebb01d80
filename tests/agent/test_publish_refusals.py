"""A broker that refuses a topic (MQTT v5 PUBACK reason code) on a real Mosquitto, and one `late` per message."""

from __future__ import annotations

import getpass
import json
import logging
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.demo.local_broker import LocalBroker
from agent.ops.runtime import Agent
from agent.ops.status import collect_status, format_status
from agent.pipeline.publish import Publisher
from agent.pipeline.release import WindowReleaser
from agent.store import Store, outbox
from tests.conftest import ManualClock, make_config
from tests.mqtt_watch import Subscriber

SHOP = "coop/v1/riverside/store-0042"
DOOR = f"{SHOP}/t1/footfall/hourly"
TOTAL = f"{SHOP}/t1/footfall-total/hourly"
# Anonymous clients get the rules above the first `user` line (mosquitto.conf(5), acl_file). The shop may
# write its status and its store total, but not its per-door stream: Mosquitto answers those publishes
# with PUBACK reason code 0x87 (Not authorized) on MQTT v5.
ACL_REFUSING_DOORS = f"topic readwrite {SHOP}/status\ntopic readwrite {TOTAL}\ntopic read #\n"
ACL_FIXED = f"topic readwrite {SHOP}/#\ntopic read #\n"


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def metrics(base: str) -> dict[str, float]:
    code, body = get(base + "/metrics")
    assert code == 200
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line[:1] != "#"}


def rows(store: Store, topic: str) -> list[tuple[int, str, int | None]]:
    query = "SELECT seq, msg_id, delivered_wall_ns FROM outbox WHERE topic = ? ORDER BY seq"
    return [(int(s), str(m), d) for s, m, d in store.conn().execute(query, (topic,))]


@pytest.fixture
def acl_broker(tmp_path: Path) -> Iterator[tuple[LocalBroker, Path]]:
    acl = tmp_path / "broker.acl"
    acl.write_text(ACL_REFUSING_DOORS)
    # Run as the test's user: started as root, Mosquitto would drop to user mosquitto, which cannot read tmp_path.
    extra = f"user {getpass.getuser()}\nacl_file {acl}\n"
    with LocalBroker(tmp_path / "broker", extra_config=extra) as running:
        yield running, acl


def test_a_refused_topic_is_held_pending_reported_and_delivered_once_oldest_first_after_the_fix(
    tmp_path: Path, acl_broker: tuple[LocalBroker, Path], clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    broker, acl = acl_broker
    caplog.set_level(logging.INFO, logger="agent.publish")
    config = make_config(tmp_path, broker.port, extra='\n[health]\nlisten = "127.0.0.1:0"\n')
    agent = Agent(config, clock)
    # Short backoff so the test sees several retries; the agent's own defaults are 2 s doubling to 300 s.
    agent.publisher = Publisher(config, agent.store, clock, retry_base_s=0.1, retry_cap_s=0.4)
    sub = Subscriber(broker.port, f"{SHOP}/t1/#")
    clock.advance(8 * 3600 + 121)
    assert agent.releaser.tick() == 8  # 8 windows: 16 per-door rows (refused), 8 store totals (allowed)
    agent.start()
    try:
        assert agent.health_server is not None
        base = f"http://127.0.0.1:{agent.health_server.port}"
        wait_until(lambda: all(d is not None for _s, _m, d in rows(agent.store, TOTAL)), 15, "the totals delivered")
        wait_until(
            lambda: (r := outbox.rejections(agent.store.conn())) != [] and r[0].attempts >= 3,
            15,
            "the oldest refused row to be tried three times",
        )
        # Refused, retried, and still nothing of the refused topic is marked delivered: all 16 rows wait.
        door_rows = rows(agent.store, DOOR)
        assert len(door_rows) == 16 and all(d is None for _s, _m, d in door_rows)
        assert not [t for t, _p, _r in sub.messages() if t == DOOR]
        code, body = get(base + "/health")
        report = json.loads(body)
        assert code == 503 and report["status"] == "degraded"
        assert any(f"broker refuses {DOOR}: Not authorized" in reason for reason in report["reasons"])
        assert report["outbox_refused"][0]["held_back"] == 16
        before_fix = metrics(base)
        assert before_fix['shopkeeper_outbox_rejected_total{reason="Not authorized"}'] >= 3
        assert before_fix["shopkeeper_outbox_held_back"] == 16
        assert before_fix["shopkeeper_outbox_pending"] == 16
        status = collect_status(config)
        assert status["outbox"]["refused"][0]["topic"] == DOOR and status["outbox"]["pending"] == 16
        assert f"broker REFUSES {DOOR}: Not authorized" in format_status(status)
        refusal_lines = [r for r in caplog.records if r.getMessage().startswith("broker refuses")]
        assert len(refusal_lines) == 1, "one log line per cause, not one per refused message"

        acl.write_text(ACL_FIXED)
        assert broker.process is not None
        broker.process.send_signal(signal.SIGHUP)  # Mosquitto re-reads its ACL file
        wait_until(lambda: agent.publisher.pending() == 0, 20, "every held row delivered after the fix")
        arrived = [json.loads(p)["msg_id"] for t, p, _r in sub.messages() if t == DOOR]
        assert arrived == [m for _s, m, _d in door_rows], "each held row exactly once, oldest first"
        assert sorted(json.loads(p)["seq"] for t, p, _r in sub.messages()) == list(range(1, 25))  # no duplicate
        code, body = get(base + "/health")
        assert code == 200 and json.loads(body)["status"] == "ok"
        after_fix = metrics(base)
        assert after_fix["shopkeeper_outbox_held_back"] == 0
        assert after_fix['shopkeeper_outbox_rejected_total{reason="Not authorized"}'] >= 3  # a counter stays
        assert [r for r in caplog.records if r.getMessage().startswith(f"broker accepts {DOOR} again")]
    finally:
        sub.close()
        agent.stop()


class V5Recorder:
    """An MQTT v5 subscriber that keeps each message's payload and user properties."""

    def __init__(self, port: int, topic: str) -> None:
        self.received: list[tuple[dict[str, Any], dict[str, str]]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="late-watch", protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10), "no SUBACK within 10 s"

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        props = dict(getattr(message.properties, "UserProperty", []))
        with self._lock:
            self.received.append((json.loads(message.payload), props))

    def messages(self) -> list[tuple[dict[str, Any], dict[str, str]]]:
        with self._lock:
            return list(self.received)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_late_is_the_same_on_the_payload_and_the_user_property(
    tmp_path: Path, broker: LocalBroker, clock: ManualClock
) -> None:
    config = make_config(tmp_path, broker.port)
    store = Store(config.db_path)
    releaser = WindowReleaser(config, store, clock)
    clock.advance(3600 + 121)
    assert releaser.tick() == 1  # window 00:00 released on time
    clock.advance(3 * 3600)
    assert releaser.tick() == 3  # 01:00 and 02:00 released hours after their end (late); 03:00 on time
    watch = V5Recorder(broker.port, f"{SHOP}/t1/#")
    # Sent at 04:02, window 00:00 is more than two windows old: the old send-time rule called it late
    # while its payload said on time. Now both say what the payload says.
    publisher = Publisher(config, store, clock)
    publisher.start()
    try:
        wait_until(lambda: len(watch.messages()) == 12, 15, "12 summaries (4 windows x 3)")
    finally:
        publisher.stop()
        watch.close()
    by_window: dict[str, set[tuple[bool, str]]] = {}
    for payload, props in watch.messages():
        by_window.setdefault(payload["window"]["start"], set()).add((payload["late"], props["late"]))
    assert by_window == {
        "2025-11-16T00:00:00Z": {(False, "false")},
        "2025-11-16T01:00:00Z": {(True, "true")},
        "2025-11-16T02:00:00Z": {(True, "true")},
        "2025-11-16T03:00:00Z": {(False, "false")},
    }


def test_refusals_recorded_before_a_restart_are_logged_once_at_start_and_keep_their_backoff(
    tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(tmp_path, port=1)  # nothing listens: only the start-up is under test
    store = Store(config.db_path)
    releaser = WindowReleaser(config, store, clock)
    clock.advance(2 * 3600 + 121)
    assert releaser.tick() == 2
    door1 = rows(store, DOOR)[0][0]
    now = time.time_ns()
    with store.transaction() as conn:
        outbox.reject(conn, door1, 0x87, "Not authorized", now, base_s=60.0)
    caplog.set_level(logging.INFO, logger="agent.publish")
    Publisher(config, store, clock)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("broker refused")]
    assert lines == [
        f"broker refused {DOOR} before this start (Not authorized, reason code 0x87): 4 summaries held back, retrying"
    ]
    # The backoff is in SQLite, so a restart neither forgets it nor lets the topic's newer rows overtake.
    sendable = {row.topic for row in outbox.next_batch(store.conn(), 100, now + 1)}
    assert sendable == {TOTAL}
