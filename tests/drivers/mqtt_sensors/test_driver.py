"""The MQTT sensors driver against a real Mosquitto, fed real Zigbee2MQTT and Tasmota payloads."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.demo.local_broker import LocalBroker
from agent.driver_api import DriverOptionError, PresenceChange
from agent.driver_api.kit import RecordingSink
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


def start(broker: LocalBroker) -> tuple[MqttSensorsDriver, RecordingSink]:
    driver = MqttSensorsDriver.from_options("shop_sensors", {"port": broker.port, "sensors": SENSORS})
    sink = RecordingSink()
    driver.start(sink)
    deadline = time.monotonic() + 10
    while not driver.health()["connected"]:
        assert time.monotonic() < deadline, "never connected"
        time.sleep(0.02)
    time.sleep(0.2)  # SUBACK: paho has no public hook to await it here
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

        deadline = time.monotonic() + 5
        expected = {
            "zigbee2mqtt:bridge": "online",
            "zigbee2mqtt:front_door_contact": "online",
            "zigbee2mqtt:stockroom/pir": "offline",
            "tasmota:backdoor": "online",
        }
        while devices() != expected:
            assert time.monotonic() < deadline, devices()
            time.sleep(0.02)
        assert any("zigbee2mqtt:stockroom/pir is offline" in p for p in sink.problems)
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
