"""The pure Zigbee2MQTT / Tasmota router: real payloads, availability forms, bad payloads, zones, fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.mqtt_sensors.protocol import (
    Availability,
    BadPayload,
    SensorActive,
    SensorSpec,
    TopicRouter,
    ZoneState,
)

FUZZ = settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DOOR = SensorSpec("zigbee2mqtt", "front_door_contact", "contact", "front_door")
PIR = SensorSpec("zigbee2mqtt", "stockroom/pir", "motion", "stockroom")
BACK = SensorSpec("tasmota", "backdoor", "contact", "back_door")
BACK_PIR = SensorSpec("tasmota", "backdoor", "motion", "back_door", switch=2, active_on=False)
ROUTER = TopicRouter([DOOR, PIR, BACK, BACK_PIR])


def test_subscribes_to_exact_topics_only() -> None:
    assert ROUTER.topics() == [
        "stat/backdoor/RESULT",
        "tele/backdoor/LWT",
        "tele/backdoor/SENSOR",
        "zigbee2mqtt/bridge/state",
        "zigbee2mqtt/front_door_contact",
        "zigbee2mqtt/front_door_contact/availability",
        "zigbee2mqtt/stockroom/pir",
        "zigbee2mqtt/stockroom/pir/availability",
    ]


@pytest.mark.parametrize(
    ("payload", "active"),
    [
        (b'{"contact": false, "battery": 97, "battery_low": false, "tamper": false, "linkquality": 120}', True),
        (b'{"contact": true, "battery": 97, "linkquality": 120}', False),
    ],
)
def test_z2m_contact_false_means_open(payload: bytes, active: bool) -> None:
    assert ROUTER.route("zigbee2mqtt/front_door_contact", payload) == [SensorActive(DOOR, active)]


def test_z2m_occupancy_on_a_friendly_name_with_a_slash() -> None:
    payload = b'{"occupancy": true, "battery": 100, "illuminance": 12, "linkquality": 90}'
    assert ROUTER.route("zigbee2mqtt/stockroom/pir", payload) == [SensorActive(PIR, True)]


def test_an_update_without_the_sensor_key_is_ignored() -> None:
    assert ROUTER.route("zigbee2mqtt/front_door_contact", b'{"battery": 96, "linkquality": 80}') == []


@pytest.mark.parametrize("payload", [b"online", b'{"state":"online"}', b'{"state": "online"}'])
def test_bridge_state_in_both_forms(payload: bytes) -> None:
    assert ROUTER.route("zigbee2mqtt/bridge/state", payload) == [Availability("zigbee2mqtt:bridge", True)]


@pytest.mark.parametrize("payload", [b"offline", b'{"state":"offline"}'])
def test_device_availability_in_both_forms(payload: bytes) -> None:
    topic = "zigbee2mqtt/stockroom/pir/availability"
    assert ROUTER.route(topic, payload) == [Availability("zigbee2mqtt:stockroom/pir", False)]


def test_tasmota_lwt() -> None:
    assert ROUTER.route("tele/backdoor/LWT", b"Online") == [Availability("tasmota:backdoor", True)]
    assert ROUTER.route("tele/backdoor/LWT", b"Offline") == [Availability("tasmota:backdoor", False)]


def test_tasmota_sensor_and_result_switches() -> None:
    assert ROUTER.route("tele/backdoor/SENSOR", b'{"Time":"2024-02-24T22:20:38","Switch1":"ON"}') == [
        SensorActive(BACK, True)
    ]
    assert ROUTER.route("stat/backdoor/RESULT", b'{"Switch1":{"Action":"OFF"}}') == [SensorActive(BACK, False)]
    # Switch2 is wired active-low (active_on = "OFF").
    assert ROUTER.route("stat/backdoor/RESULT", b'{"Switch2":{"Action":"OFF"}}') == [SensorActive(BACK_PIR, True)]
    assert ROUTER.route("stat/backdoor/RESULT", b'{"POWER":"ON"}') == []


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("zigbee2mqtt/front_door_contact", b"{not json", "json"),
        ("zigbee2mqtt/front_door_contact", b'{"contact": "open"}', "contact"),
        ("zigbee2mqtt/front_door_contact", b"[1, 2]", "json"),
        ("zigbee2mqtt/bridge/state", b"maybe", "availability"),
        ("tele/backdoor/SENSOR", b'{"Switch1":"TOGGLE"}', "Switch"),
        ("stat/backdoor/RESULT", b'{"Switch1":"ON"}', "Switch"),
        ("tele/backdoor/SENSOR", b"\xff\xfe", "json"),
    ],
)
def test_unreadable_payloads_are_bad(topic: str, payload: bytes, reason: str) -> None:
    assert BadPayload(topic, reason) in ROUTER.route(topic, payload)


def test_unknown_topics_are_ignored() -> None:
    assert ROUTER.route("zigbee2mqtt/kitchen_plug", b'{"state":"ON"}') == []


def test_a_zone_is_present_while_any_of_its_sensors_is_active() -> None:
    zones = ZoneState()
    assert zones.update(SensorActive(BACK, True)) is True
    assert zones.update(SensorActive(BACK_PIR, True)) is None
    assert zones.update(SensorActive(BACK, False)) is None
    assert zones.update(SensorActive(BACK_PIR, False)) is False
    assert zones.update(SensorActive(DOOR, False)) is False  # the first state of a zone is reported


@FUZZ
@given(st.sampled_from([*ROUTER.topics(), "zigbee2mqtt/other"]), st.binary(max_size=200))
def test_random_payloads_never_raise(topic: str, payload: bytes) -> None:
    ROUTER.route(topic, payload)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["contact", "occupancy", "state", "Switch1", "Action", "x"]), inner, max_size=3
        )
    ),
    max_leaves=8,
)


@FUZZ
@given(st.sampled_from(ROUTER.topics()), JSONISH)
def test_random_json_never_raises(topic: str, value: object) -> None:
    import json

    ROUTER.route(topic, json.dumps(value).encode())
