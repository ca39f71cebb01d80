"""The pure Zigbee2MQTT / Tasmota router: vendor-documented payloads, layouts, modes, zones, fuzzing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.mqtt_sensors.driver import MqttSensorsDriver
from drivers.mqtt_sensors.protocol import (
    Availability,
    BadPayload,
    Observation,
    RelayHint,
    SensorActive,
    SensorSpec,
    SensorToggle,
    TasmotaLayout,
    TopicRouter,
    full_topic_problem,
)
from drivers.mqtt_sensors.zones import ZoneState

FIXTURES = Path(__file__).parent / "fixtures"
FUZZ = settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DOOR = SensorSpec("zigbee2mqtt", "front_door_contact", "contact", "front_door")
PIR = SensorSpec("zigbee2mqtt", "stockroom/pir", "motion", "stockroom")
BACK = SensorSpec("tasmota", "backdoor", "contact", "back_door")
BACK_PIR = SensorSpec("tasmota", "backdoor", "motion", "back_door", switch=2, active_on=False)
RELAY = SensorSpec("tasmota", "side_door", "contact", "side_door", mode="relay")
ROUTER = TopicRouter([DOOR, PIR, BACK, BACK_PIR, RELAY])


def describe(observation: Observation) -> str:
    """An observation in the fixtures' words: "active <sensor key>", "offline <device>", "bad <reason>"."""
    if isinstance(observation, BadPayload):
        return f"bad {observation.reason}"
    if isinstance(observation, RelayHint):
        return f"relay-hint {observation.sensor.key}"
    if isinstance(observation, Availability):
        text = f"{'online' if observation.online else 'offline'} {observation.device}"
    elif isinstance(observation, SensorToggle):
        text = f"toggle {observation.sensor.key}"
    else:
        text = f"{'active' if observation.active else 'inactive'} {observation.sensor.key}"
    return text + (" retained" if observation.retained else "")


def router_for(fixture: dict[str, Any]) -> TopicRouter:
    """The router the driver builds from the fixture's options (so option parsing is covered too)."""
    driver = MqttSensorsDriver.from_options("fixture", {**fixture["options"], "sensors": fixture["sensors"]})
    return driver.router


CASES = [
    pytest.param(path.stem, i, id=f"{path.stem}-{i}")
    for path in sorted(FIXTURES.glob("*.json"))
    for i in range(len(json.loads(path.read_text())["cases"]))
]


def test_every_fixture_names_its_source() -> None:
    fixtures = sorted(FIXTURES.glob("*.json"))
    assert len(fixtures) >= 10
    for path in fixtures:
        source = json.loads(path.read_text())["source"]
        assert ("zigbee2mqtt" in source or "tasmota/docs" in source) and ".md" in source, path.name


@pytest.mark.parametrize(("fixture", "index"), CASES)
def test_vendor_documented_messages_read_right(fixture: str, index: int) -> None:
    data = json.loads((FIXTURES / f"{fixture}.json").read_text())
    case = data["cases"][index]
    observations = router_for(data).route(case["topic"], case["payload"].encode(), case["retained"])
    assert [describe(o) for o in observations] == case["expect"], case.get("note", "")


def test_subscribes_to_exact_topics_only() -> None:
    assert ROUTER.topics() == [
        "cmnd/side_door/POWER",
        "cmnd/side_door/POWER1",
        "cmnd/side_door/Power",
        "cmnd/side_door/Power1",
        "cmnd/side_door/power",
        "cmnd/side_door/power1",
        "stat/backdoor/POWER",
        "stat/backdoor/POWER1",
        "stat/backdoor/POWER2",
        "stat/backdoor/RESULT",
        "stat/side_door/POWER",
        "stat/side_door/POWER1",
        "stat/side_door/RESULT",
        "tele/backdoor/LWT",
        "tele/backdoor/SENSOR",
        "tele/side_door/LWT",
        "tele/side_door/STATE",
        "zigbee2mqtt/bridge/state",
        "zigbee2mqtt/front_door_contact",
        "zigbee2mqtt/front_door_contact/availability",
        "zigbee2mqtt/stockroom/pir",
        "zigbee2mqtt/stockroom/pir/availability",
    ]
    assert not any("#" in t or "+" in t for t in ROUTER.topics())


def test_custom_base_topic_moves_state_availability_and_bridge() -> None:
    router = TopicRouter([DOOR], z2m_base="shop/z2m")
    assert router.topics() == [
        "shop/z2m/bridge/state",
        "shop/z2m/front_door_contact",
        "shop/z2m/front_door_contact/availability",
    ]
    assert router.route("shop/z2m/front_door_contact", b'{"contact": false}') == [SensorActive(DOOR, True)]
    assert router.route("shop/z2m/bridge/state", b"offline") == [Availability("zigbee2mqtt:bridge", False)]


def test_tasmota_layout_fills_full_topic_and_prefixes() -> None:
    layout = TasmotaLayout("shop/%topic%/%prefix%", ("befehl", "status", "tele"))
    assert layout.topic(1, "backdoor", "POWER") == "shop/backdoor/status/POWER"  # Tasmota adds the final "/"
    router = TopicRouter([BACK], tasmota=layout)
    assert router.route("shop/backdoor/tele/SENSOR", b'{"Switch1":"ON"}') == [SensorActive(BACK, True)]


@pytest.mark.parametrize(
    ("full_topic", "problem"),
    [
        ("%prefix%/%topic%/", None),
        ("tasmota/bedroom/%topic%/%prefix%/", None),
        ("%prefix%/%hostname%/", "needs %prefix% and %topic% once each"),
        ("%prefix%/%topic%/%id%/", "has a token other than %prefix% and %topic% (write the hostname or id literally)"),
        ("%prefix%/+/%topic%/", "has an MQTT wildcard"),
    ],
)
def test_full_topic_validation(full_topic: str, problem: str | None) -> None:
    assert full_topic_problem(full_topic) == problem


def test_bridge_is_only_watched_when_zigbee2mqtt_is_used() -> None:
    assert TopicRouter([BACK]).devices() == ["tasmota:backdoor"]
    assert "zigbee2mqtt:bridge" in ROUTER.devices()


def test_describe_names_the_device_its_type_and_zone() -> None:
    assert ROUTER.describe("zigbee2mqtt:front_door_contact") == "front_door_contact (contact sensor, zone front_door)"
    assert ROUTER.describe("tasmota:backdoor") == "backdoor (contact/motion sensors, zone back_door)"
    assert ROUTER.describe("zigbee2mqtt:bridge") == "the Zigbee2MQTT bridge (zigbee2mqtt/bridge/state)"


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("zigbee2mqtt/front_door_contact", b"{not json", "json"),
        ("zigbee2mqtt/front_door_contact", b'{"contact": "open"}', "contact"),
        ("zigbee2mqtt/front_door_contact", b"[1, 2]", "json"),
        ("zigbee2mqtt/bridge/state", b"maybe", "availability"),
        ("tele/backdoor/SENSOR", b'{"Switch1":"MAYBE"}', "Switch"),
        ("stat/backdoor/RESULT", b'{"Switch1":"ON"}', "Switch"),
        ("tele/backdoor/SENSOR", b"\xff\xfe", "json"),
        ("tele/side_door/STATE", b'{"POWER": 1}', "POWER"),
        ("cmnd/side_door/POWER", b"LATER", "POWER"),
    ],
)
def test_unreadable_payloads_are_bad(topic: str, payload: bytes, reason: str) -> None:
    assert BadPayload(topic, reason) in ROUTER.route(topic, payload)


def test_active_low_switch_and_other_switch_numbers() -> None:
    # Switch2 is wired active-low (active_on = "OFF").
    assert ROUTER.route("stat/backdoor/RESULT", b'{"Switch2":{"Action":"OFF"}}') == [SensorActive(BACK_PIR, True)]
    assert ROUTER.route("stat/backdoor/RESULT", b'{"POWER":"ON"}') == [RelayHint(BACK)]  # not a Switch message
    assert ROUTER.route("stat/backdoor/POWER2", b"ON") == [RelayHint(BACK_PIR)]


def test_unknown_topics_are_ignored() -> None:
    assert ROUTER.route("zigbee2mqtt/kitchen_plug", b'{"state":"ON"}') == []


def test_a_zone_is_present_while_any_of_its_sensors_is_active() -> None:
    zones = ZoneState()
    assert zones.update(SensorActive(BACK, True)) is True
    assert zones.update(SensorActive(BACK_PIR, True)) is None
    assert zones.update(SensorActive(BACK, False)) is None
    assert zones.update(SensorActive(BACK_PIR, False)) is False
    assert zones.update(SensorActive(DOOR, False)) is False  # the first live state of a zone is reported


def test_a_retained_state_sets_the_baseline_and_counts_nothing() -> None:
    zones = ZoneState()
    assert zones.update(SensorActive(DOOR, True, retained=True)) is None  # the door was left open
    assert zones.snapshot()["zigbee2mqtt:front_door_contact"] == {
        "state": "active",
        "changes": 0,
        "unplaced_toggles": 0,
    }
    assert zones.update(SensorActive(DOOR, True)) is None  # the same state live: no change
    assert zones.update(SensorActive(DOOR, False)) is False  # it closes: that counts
    assert zones.update(SensorActive(DOOR, True, retained=True)) is None  # a resubscribe re-baselines silently
    assert zones.snapshot()["zigbee2mqtt:front_door_contact"]["changes"] == 1


def test_toggle_flips_a_known_state_and_waits_for_an_unknown_one() -> None:
    zones = ZoneState()
    assert zones.update(SensorToggle(RELAY)) is None  # no state known yet: cannot say open or closed
    assert zones.snapshot()[RELAY.key] == {"state": "unknown", "changes": 1, "unplaced_toggles": 1}
    assert zones.update(SensorActive(RELAY, False, retained=True)) is None  # PowerRetain: the baseline
    assert zones.update(SensorToggle(RELAY)) is True  # closed -> open
    assert zones.update(SensorActive(RELAY, True)) is None  # the stat/POWER echo of that toggle
    assert zones.update(SensorToggle(RELAY)) is False  # open -> closed
    assert zones.update(SensorToggle(RELAY, retained=True)) is None  # an old command: not news
    assert zones.snapshot()[RELAY.key] == {"state": "inactive", "changes": 3, "unplaced_toggles": 1}


@FUZZ
@given(st.sampled_from([*ROUTER.topics(), "zigbee2mqtt/other"]), st.binary(max_size=200), st.booleans())
def test_random_payloads_never_raise(topic: str, payload: bytes, retained: bool) -> None:
    ROUTER.route(topic, payload, retained)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["contact", "occupancy", "presence", "state", "Switch1", "Action", "POWER", "x"]),
            inner,
            max_size=3,
        )
    ),
    max_leaves=8,
)


@FUZZ
@given(st.sampled_from(ROUTER.topics()), JSONISH)
def test_random_json_never_raises(topic: str, value: object) -> None:
    zones = ZoneState()
    for observation in ROUTER.route(topic, json.dumps(value).encode()):
        if isinstance(observation, SensorActive | SensorToggle):
            zones.update(observation)
