"""The MQTT sensors driver against a real Mosquitto, fed real Zigbee2MQTT and Tasmota payloads."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.demo.local_broker import LocalBroker
from agent.driver_api import DriverOptionError, PresenceChange
from agent.driver_api.kit import RecordingSink
from agent.ops.health import health_report
from agent.store import Store
from drivers.mqtt_sensors.driver import MqttSensorsDriver

SENSORS = [
    {"source": "zigbee2mqtt", "device": "front_door_contact", "type": "contact", "zone": "front_door"},
    {"source": "zigbee2mqtt", "device": "stockroom/pir", "type": "motion", "zone": "stockroom"},
    {"source": "tasmota", "device": "backdoor", "type": "contact", "zone": "back_door"},
]


@pytest.mark.parametrize(
    ("bad", "key"),
    [
        ({}, "sensors"),
        ({"sensors": []}, "sensors"),
        ({"sensors": [{**SENSORS[0], "source": "hue"}]}, "sensors[0].source"),
        ({"sensors": [SENSORS[0], {**SENSORS[1], "type": "door"}]}, "sensors[1].type"),
        ({"sensors": [{**SENSORS[0], "zone": "Front Door"}]}, "sensors[0].zone"),
        ({"sensors": [{**SENSORS[0], "device": "zigbee2mqtt/#"}]}, "sensors[0].device"),
        ({"sensors": [{**SENSORS[2], "active_on": "HIGH"}]}, "sensors[0].active_on"),
        ({"sensors": [{**SENSORS[2], "colour": "red"}]}, "sensors[0].colour"),
        ({"sensors": SENSORS, "port": 0}, "port"),
        ({"sensors": SENSORS, "z2m_base_topic": "z2m/+"}, "z2m_base_topic"),
        ({"sensors": SENSORS, "z2m_output": "yaml"}, "z2m_output"),
        ({"sensors": SENSORS, "tasmota_full_topic": "%prefix%/%hostname%/"}, "tasmota_full_topic"),
        ({"sensors": SENSORS, "tasmota_full_topic": "tasmota/%topic%/"}, "tasmota_full_topic"),
        ({"sensors": SENSORS, "tasmota_prefixes": ["cmnd", "stat"]}, "tasmota_prefixes"),
        ({"sensors": SENSORS, "tasmota_prefixes": ["cmnd", "stat", "te/le"]}, "tasmota_prefixes"),
        ({"sensors": [{**SENSORS[2], "mode": "power"}]}, "sensors[0].mode"),
        ({"sensors": [{**SENSORS[0], "mode": "relay"}]}, "sensors[0].mode"),
        ({"sensors": [SENSORS[2], {**SENSORS[0], "active_on": "OFF"}]}, "sensors[1].active_on"),
    ],
)
def test_bad_options_name_the_key(bad: dict[str, object], key: str) -> None:
    with pytest.raises(DriverOptionError) as caught:
        MqttSensorsDriver.from_options("shop_sensors", bad)
    assert caught.value.key == key


class Publisher:
    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send(self, topic: str, payload: str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def publisher(broker: LocalBroker) -> Iterator[Publisher]:
    pub = Publisher(broker.port)
    yield pub
    pub.close()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def start(
    broker: LocalBroker, sensors: list[dict[str, Any]] | None = None, sink: RecordingSink | None = None, **options: Any
) -> tuple[MqttSensorsDriver, RecordingSink]:
    driver = MqttSensorsDriver.from_options(
        "shop_sensors", {"port": broker.port, "sensors": sensors or SENSORS, **options}
    )
    sink = sink or RecordingSink()
    driver.start(sink)
    wait_until(lambda: bool(driver.health()["subscribed"]), "SUBACK")
    return driver, sink


def test_z2m_contact_and_occupancy_become_presence_changes(broker: LocalBroker, publisher: Publisher) -> None:
    driver, sink = start(broker)
    try:
        publisher.send("zigbee2mqtt/front_door_contact", '{"contact":false,"battery":97,"linkquality":120}')
        publisher.send("zigbee2mqtt/front_door_contact", '{"contact":true,"battery":97,"linkquality":120}')
        publisher.send("zigbee2mqtt/stockroom/pir", '{"occupancy":true,"battery":100,"illuminance":3}')
        publisher.send("zigbee2mqtt/stockroom/pir", '{"battery":99}')  # no occupancy key: ignored
        sink.wait_for(lambda: len(sink.readings) == 3, 5, "three changes")
        assert sink.readings == [
            PresenceChange("front_door", True),
            PresenceChange("front_door", False),
            PresenceChange("stockroom", True),
        ]
        assert driver.doors() == []
    finally:
        driver.stop()


def test_tasmota_sensor_and_result_events(broker: LocalBroker, publisher: Publisher) -> None:
    driver, sink = start(broker)
    try:
        publisher.send("tele/backdoor/SENSOR", '{"Time":"2024-02-24T22:20:38","Switch1":"ON"}')
        publisher.send("stat/backdoor/RESULT", '{"Switch1":{"Action":"OFF"}}')
        sink.wait_for(lambda: len(sink.readings) == 2, 5, "two changes")
        assert [r.present for r in sink.readings] == [True, False]  # type: ignore[union-attr]
    finally:
        driver.stop()


def test_health_reports_availability_per_device(broker: LocalBroker, publisher: Publisher) -> None:
    publisher.send("zigbee2mqtt/bridge/state", '{"state":"online"}', retain=True)  # retained, before we subscribe
    driver, sink = start(broker)
    try:
        publisher.send("zigbee2mqtt/front_door_contact/availability", "online")
        publisher.send("zigbee2mqtt/stockroom/pir/availability", '{"state":"offline"}')
        publisher.send("tele/backdoor/LWT", "Online")

        def devices() -> dict[str, Any]:
            return dict(driver.health()["devices"])

        expected = {
            "zigbee2mqtt:bridge": "online",
            "zigbee2mqtt:front_door_contact": "online",
            "zigbee2mqtt:stockroom/pir": "offline",
            "tasmota:backdoor": "online",
        }
        wait_until(lambda: devices() == expected, f"devices {expected}")
        assert sink.problems == ["stockroom/pir (motion sensor, zone stockroom) is offline"]
    finally:
        driver.stop()


def test_bad_payloads_are_counted(broker: LocalBroker, publisher: Publisher) -> None:
    driver, sink = start(broker)
    try:
        publisher.send("zigbee2mqtt/front_door_contact", "{not json")
        publisher.send("stat/backdoor/RESULT", '{"Switch1":{"Action":"MAYBE"}}')
        sink.wait_for(lambda: len(sink.bad) == 2, 5, "two bad payloads")
        assert driver.health()["bad_frames"] == 2
    finally:
        driver.stop()


def test_nothing_is_emitted_after_stop(broker: LocalBroker, publisher: Publisher) -> None:
    driver, sink = start(broker)
    publisher.send("zigbee2mqtt/front_door_contact", '{"contact":false}')
    sink.wait_for(lambda: len(sink.readings) == 1, 5, "a change")
    driver.stop()
    before = sink.snapshot()
    publisher.send("zigbee2mqtt/front_door_contact", '{"contact":true}')
    publisher.send("zigbee2mqtt/front_door_contact", "garbage")
    time.sleep(0.3)  # nothing to await: the claim is that nothing happens
    assert sink.snapshot() == before and not driver.health()["connected"]


def sensor_health(driver: MqttSensorsDriver, key: str) -> dict[str, Any]:
    return dict(driver.health()["sensors"].get(key, {}))


def test_retained_state_on_subscribe_counts_nothing(broker: LocalBroker, publisher: Publisher) -> None:
    # Zigbee2MQTT publishes device state retained: the door was left open before the agent started.
    publisher.send("zigbee2mqtt/front_door_contact", '{"contact":false,"battery":97}', retain=True)
    driver, sink = start(broker)
    try:
        key = "zigbee2mqtt:front_door_contact"
        wait_until(lambda: sensor_health(driver, key).get("state") == "active", "the retained state")
        assert sink.readings == [] and sensor_health(driver, key)["changes"] == 0
        publisher.send("zigbee2mqtt/front_door_contact", '{"contact":true,"battery":97}')  # live: it closes
        sink.wait_for(lambda: len(sink.readings) == 1, 5, "the closing")
        assert sink.readings == [PresenceChange("front_door", False)]
        assert sensor_health(driver, key)["changes"] == 1
    finally:
        driver.stop()


def test_retained_state_on_resubscribe_counts_nothing(tmp_path: Path) -> None:
    # A persistent broker keeps the retained state across its restart, so the driver's resubscribe replays it.
    with LocalBroker(tmp_path / "broker", persistent=True) as broker:
        publisher = Publisher(broker.port)
        publisher.send("zigbee2mqtt/front_door_contact", '{"contact":false}', retain=True)
        driver, sink = start(broker)
        driver.backoff_initial_s = driver.backoff_max_s = 0.1
        try:
            key = "zigbee2mqtt:front_door_contact"
            wait_until(lambda: sensor_health(driver, key).get("state") == "active", "the retained state")
            driver.stop()  # an agent restart: same broker, fresh subscription
            driver.start(sink)
            wait_until(lambda: bool(driver.health()["subscribed"]), "the second SUBACK")
            publisher.close()
            broker.stop()  # a broker restart: the driver reconnects and resubscribes
            broker.start()
            wait_until(
                lambda: driver.health()["reconnects"] >= 1 and bool(driver.health()["subscribed"]), "resubscribe"
            )
            publisher = Publisher(broker.port)
            publisher.send("zigbee2mqtt/front_door_contact", '{"contact":true}')  # the first live change
            sink.wait_for(lambda: len(sink.readings) == 1, 5, "the closing")
            assert sink.readings == [PresenceChange("front_door", False)]
            assert sensor_health(driver, key)["changes"] == 1
        finally:
            driver.stop()
            publisher.close()


def test_retained_message_published_while_subscribed_is_live(broker: LocalBroker, publisher: Publisher) -> None:
    # The broker clears the retain flag on what it forwards to an existing subscription: this one is news.
    driver, sink = start(broker)
    try:
        publisher.send("zigbee2mqtt/front_door_contact", '{"contact":false}', retain=True)
        sink.wait_for(lambda: len(sink.readings) == 1, 5, "the opening")
        assert sink.readings == [PresenceChange("front_door", True)]
    finally:
        driver.stop()


RELAY_SENSORS = [
    {"source": "tasmota", "device": "side_door", "type": "contact", "zone": "side_door", "mode": "relay",
     "active_on": "OFF"},
]  # fmt: skip


def test_tasmota_relay_mode_and_toggle_counted_right(broker: LocalBroker, publisher: Publisher) -> None:
    # PowerRetain 1: the relay's state is retained; with SwitchMode1 1 it follows the reed (ON = closed).
    publisher.send("stat/side_door/POWER", "ON", retain=True)
    driver, sink = start(broker, RELAY_SENSORS)
    try:
        key = "tasmota:side_door:Switch1"
        wait_until(lambda: sensor_health(driver, key).get("state") == "inactive", "the retained POWER")
        # SwitchTopic 1: the switch sends cmnd/<topic>/POWER TOGGLE, then the device reports its relay.
        for topic, payload in [
            ("cmnd/side_door/POWER", "TOGGLE"),
            ("stat/side_door/RESULT", '{"POWER":"OFF"}'),
            ("stat/side_door/POWER", "OFF"),
            ("cmnd/side_door/POWER", "TOGGLE"),
            ("stat/side_door/POWER", "ON"),
            ("tele/side_door/STATE", '{"Time":"2024-02-24T22:20:38","POWER":"ON"}'),
        ]:
            publisher.send(topic, payload)
        sink.wait_for(lambda: len(sink.readings) == 2, 5, "an opening and a closing")
        wait_until(lambda: driver.health()["frames"] >= 7, "every message read")
        assert sink.readings == [PresenceChange("side_door", True), PresenceChange("side_door", False)]
        assert driver.health()["bad_frames"] == 0 and sink.bad == []
        assert sensor_health(driver, key) == {"state": "inactive", "changes": 2, "unplaced_toggles": 0}
    finally:
        driver.stop()


def test_z2m_attribute_output_and_presence(broker: LocalBroker, publisher: Publisher) -> None:
    sensors = [*SENSORS, {"source": "zigbee2mqtt", "device": "till/fp1", "type": "presence", "zone": "till"}]
    driver, sink = start(broker, sensors, z2m_output="attribute")
    try:
        publisher.send("zigbee2mqtt/front_door_contact/contact", "false")
        publisher.send("zigbee2mqtt/front_door_contact/battery", "97")  # not subscribed
        publisher.send("zigbee2mqtt/till/fp1/presence", "true")
        publisher.send("zigbee2mqtt/front_door_contact/contact", "true")
        sink.wait_for(lambda: len(sink.readings) == 3, 5, "three changes")
        assert sink.readings == [
            PresenceChange("front_door", True),
            PresenceChange("till", True),
            PresenceChange("front_door", False),
        ]
    finally:
        driver.stop()


def test_custom_tasmota_full_topic(broker: LocalBroker, publisher: Publisher) -> None:
    driver, sink = start(broker, tasmota_full_topic="shop/%topic%/%prefix%/")
    try:
        publisher.send("tele/backdoor/SENSOR", '{"Switch1":"ON"}')  # the default layout: not this device's
        publisher.send("shop/backdoor/tele/SENSOR", '{"Time":"2021-01-01T00:00:00","Switch1":"ON"}')
        publisher.send("shop/backdoor/stat/RESULT", '{"Switch1":{"Action":"OFF"}}')
        sink.wait_for(lambda: len(sink.readings) == 2, 5, "two changes")
        assert sink.readings == [PresenceChange("back_door", True), PresenceChange("back_door", False)]
        assert driver.health()["frames"] == 2
    finally:
        driver.stop()


def agent_health(driver: MqttSensorsDriver, tmp_path: Path) -> dict[str, Any]:
    """The agent's /health report with this driver as its only one (the rest of the agent healthy)."""
    agent = SimpleNamespace(
        publisher=SimpleNamespace(connected=True),
        clock=SimpleNamespace(synced=lambda: True),
        store=Store(tmp_path / "shopkeeper.db"),
        ingest=SimpleNamespace(stats=lambda: {"store_error": ""}),
        supervisor=SimpleNamespace(health=lambda: {driver.name: {"running": True, **driver.health()}}),
        home_assistant=None,
    )
    return health_report(agent)  # type: ignore[arg-type]


@pytest.mark.parametrize(("offline", "online"), [("offline", "online"), ('{"state":"offline"}', '{"state":"online"}')])
def test_bridge_offline_degrades_health_and_online_clears_it(
    broker: LocalBroker,
    publisher: Publisher,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    offline: str,
    online: str,
) -> None:
    publisher.send("zigbee2mqtt/bridge/state", online, retain=True)
    driver, sink = start(broker)
    caplog.set_level(logging.INFO, logger="drivers.mqtt_sensors.driver")
    try:
        wait_until(lambda: driver.health()["devices"]["zigbee2mqtt:bridge"] == "online", "the bridge online")
        assert driver.health()["degraded"] == ""
        publisher.send("zigbee2mqtt/bridge/state", offline, retain=True)  # Z2M's last will, retained
        publisher.send("zigbee2mqtt/bridge/state", offline, retain=True)  # again: not a new change
        wait_until(lambda: driver.health()["frames"] >= 3, "both offline messages")
        degraded = driver.health()["degraded"]
        assert degraded.startswith("the Zigbee2MQTT bridge (zigbee2mqtt/bridge/state) offline since 20"), degraded
        assert sink.problems == ["the Zigbee2MQTT bridge (zigbee2mqtt/bridge/state) is offline"]
        assert agent_health(driver, tmp_path)["reasons"] == [f"driver shop_sensors: {degraded}"]
        publisher.send("zigbee2mqtt/bridge/state", online, retain=True)
        wait_until(lambda: driver.health()["degraded"] == "", "degraded cleared")
        assert agent_health(driver, tmp_path)["status"] == "ok"
        back = [r.getMessage() for r in caplog.records if "back online" in r.getMessage()]
        expected = r"driver shop_sensors: the Zigbee2MQTT bridge \(.*\) is back online after \d+ s offline"
        assert len(back) == 1 and re.fullmatch(expected, back[0]), back
    finally:
        driver.stop()


def test_retained_device_offline_and_tasmota_lwt_degrade_at_start(broker: LocalBroker, publisher: Publisher) -> None:
    publisher.send("zigbee2mqtt/front_door_contact/availability", '{"state":"offline"}', retain=True)
    publisher.send("tele/backdoor/LWT", "Offline", retain=True)
    driver, sink = start(broker)
    try:
        wait_until(lambda: driver.health()["degraded"].count("offline since") == 2, "two devices offline")
        degraded = driver.health()["degraded"]
        assert "front_door_contact (contact sensor, zone front_door) offline since" in degraded
        assert "backdoor (contact sensor, zone back_door) offline since" in degraded
        assert sorted(sink.problems) == [
            "backdoor (contact sensor, zone back_door) is offline (retained state)",
            "front_door_contact (contact sensor, zone front_door) is offline (retained state)",
        ]
        publisher.send("tele/backdoor/LWT", "Online", retain=True)
        wait_until(lambda: "backdoor" not in driver.health()["degraded"], "the Tasmota device back")
        assert "front_door_contact" in driver.health()["degraded"]
    finally:
        driver.stop()


def test_a_switch_sensor_left_in_relay_mode_is_named_once(broker: LocalBroker, publisher: Publisher) -> None:
    driver, sink = start(broker)  # backdoor is configured as a detached switch (mode = "switch")
    try:
        for payload in ("ON", "OFF", "ON"):  # but Switch1 still drives the relay: POWER messages only
            publisher.send("stat/backdoor/POWER", payload)
        wait_until(lambda: driver.health()["frames"] >= 3, "the three POWER messages")
        assert sink.readings == []
        assert sink.problems == [
            "backdoor (contact sensor, zone back_door) reports its relay (POWER) but has sent no Switch1 message"
            ' yet: if Switch1 drives the relay, set mode = "relay" for this sensor, or detach it with SetOption114 1'
        ]
    finally:
        driver.stop()
