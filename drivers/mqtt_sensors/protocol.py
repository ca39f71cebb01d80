"""Zigbee2MQTT and Tasmota door/motion/presence messages: pure topic routing and payload parsing, no I/O.

Topics and payloads, with the default layouts (protocols.md 5; the fixtures in
tests/drivers/mqtt_sensors/fixtures name the vendor page each example comes from):

    <base>/<friendly_name>                {"contact": false, ...} (false = open), {"occupancy": true, ...}
                                          or {"presence": true, ...} (mmWave, e.g. Aqara FP1)
    <base>/<friendly_name>/<attribute>    false | true (Z2M `advanced.output: attribute`; values stringified)
    <base>/<friendly_name>/availability   online | offline | {"state": "online"}
    <base>/bridge/state                   online | offline | {"state": "online"}
    tele/<topic>/LWT                      Online | Offline
    tele/<topic>/SENSOR                   {"Time": "...", "Switch1": "ON"}       switch mode (SwitchMode 15)
    stat/<topic>/RESULT                   {"Switch1": {"Action": "ON"}}          switch mode (SetOption114 1)
    stat/<topic>/POWER                    ON | OFF                               relay mode (the default)
    stat/<topic>/RESULT, tele/<topic>/STATE   {"POWER": "ON", ...}               relay mode
    cmnd/<topic>/POWER                    ON | OFF | TOGGLE                      relay mode with SwitchTopic 1

`<base>` is Zigbee2MQTT's base_topic; Tasmota topics follow its FullTopic (`%prefix%/%topic%/` by
default) and Prefix1-3 (`cmnd`, `stat`, `tele`). Friendly names may contain "/", so topics are matched
exactly against the configured sensors, never split. A message that concerns a configured device but
cannot be read is "bad"; a message without the sensor's key (a battery-only update, a result of another
command) is ignored. The Tasmota `Time` field is device local time without a zone and is not used.
Whether a message was retained is passed in by the caller: a retained message is a state, not news.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence

Z2M = "zigbee2mqtt"
TASMOTA = "tasmota"
CONTACT = "contact"
MOTION = "motion"
PRESENCE = "presence"
SWITCH_MODE = "switch"
RELAY_MODE = "relay"
Z2M_OUTPUTS = ("json", "attribute", "attribute_and_json")
DEFAULT_FULL_TOPIC = "%prefix%/%topic%/"
DEFAULT_PREFIXES = ("cmnd", "stat", "tele")
CMND, STAT, TELE = 0, 1, 2
BRIDGE = f"{Z2M}:bridge"

# The Z2M keys each type reads. PIRs expose `occupancy`; mmWave sensors (Aqara FP1) expose `presence`;
# Zigbee2MQTT 2.0 renamed occupancy to presence for some devices, so both are read for either type.
Z2M_KEYS = {CONTACT: ("contact",), MOTION: ("occupancy", "presence"), PRESENCE: ("occupancy", "presence")}
# Tasmota texts that are not a state: long presses and dimmer gestures of the push-button SwitchModes.
NOT_A_STATE = frozenset({"HOLD", "INC_DEC", "INV", "CLEAR", "DOUBLE", "POWER_DELAYED", "BLINK", "BLINKOFF"})


@dataclasses.dataclass(frozen=True, slots=True)
class SensorSpec:
    """One configured sensor: where it publishes, what it is, which zone it belongs to."""

    source: str  # "zigbee2mqtt" or "tasmota"
    device: str  # Z2M friendly name or Tasmota topic
    type: str  # "contact", "motion" or "presence"
    zone: str
    switch: int = 1  # Tasmota SwitchN (and, in relay mode, the PowerN it drives)
    active_on: bool = True  # Tasmota: does "ON" mean open/motion?
    mode: str = SWITCH_MODE  # Tasmota: "switch" (detached, SwitchN messages) or "relay" (POWERN)

    @property
    def key(self) -> str:
        """A stable id for health: "zigbee2mqtt:front_door" or "tasmota:backdoor:Switch1"."""
        return f"{self.source}:{self.device}" + (f":Switch{self.switch}" if self.source == TASMOTA else "")


@dataclasses.dataclass(frozen=True, slots=True)
class TasmotaLayout:
    """Tasmota's FullTopic and Prefix1-3: where a device's commands, status and telemetry appear."""

    full_topic: str = DEFAULT_FULL_TOPIC
    prefixes: tuple[str, str, str] = DEFAULT_PREFIXES

    def topic(self, prefix: int, device: str, command: str) -> str:
        """The topic of `command` for `device` under prefix CMND, STAT or TELE."""
        # Tasmota appends the missing "/" itself, so "%prefix%/%topic%" and "%prefix%/%topic%/" agree.
        full = self.full_topic if self.full_topic.endswith("/") else self.full_topic + "/"
        return full.replace("%prefix%", self.prefixes[prefix]).replace("%topic%", device) + command


def full_topic_problem(value: str) -> str | None:
    """Why `value` cannot be used as a FullTopic here, or None when it can."""
    if any(c in value for c in "#+"):
        return "has an MQTT wildcard"
    if value.count("%prefix%") != 1 or value.count("%topic%") != 1:
        return "needs %prefix% and %topic% once each"
    if "%" in value.replace("%prefix%", "").replace("%topic%", ""):
        return "has a token other than %prefix% and %topic% (write the hostname or id literally)"
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class SensorActive:
    """A sensor reports open (contact) or motion/presence, or not; `retained` = a stored state."""

    sensor: SensorSpec
    active: bool
    retained: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class SensorToggle:
    """A Tasmota TOGGLE: the input changed state, without saying to which."""

    sensor: SensorSpec
    retained: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Availability:
    """A device (or the Z2M bridge, "zigbee2mqtt:bridge") went online or offline."""

    device: str  # "zigbee2mqtt:bridge", "zigbee2mqtt:<name>" or "tasmota:<topic>"
    online: bool
    retained: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class RelayHint:
    """A switch-mode Tasmota sensor's device reports its relay (POWER): it may be left in relay mode."""

    sensor: SensorSpec


@dataclasses.dataclass(frozen=True, slots=True)
class BadPayload:
    """A message for a configured device that could not be read."""

    topic: str
    reason: str


Observation = SensorActive | SensorToggle | Availability | RelayHint | BadPayload


def _text(payload: bytes) -> str:
    return payload.decode("utf-8", "replace").strip()


def _online(payload: bytes) -> bool | None:
    text = _text(payload)
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except ValueError:
            return None
        text = value.get("state", "") if isinstance(value, dict) else ""
        if not isinstance(text, str):
            return None
    lowered = text.lower()
    return True if lowered == "online" else False if lowered == "offline" else None


def _json_object(payload: bytes) -> dict[str, object] | None:
    try:
        value = json.loads(payload.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _power_keys(spec: SensorSpec) -> tuple[str, ...]:
    # A one-relay device says POWER, a multi-relay one (or SetOption26 1) POWER1.
    return ("POWER", "POWER1") if spec.switch == 1 else (f"POWER{spec.switch}",)


@dataclasses.dataclass(frozen=True, slots=True)
class _Route:
    kind: str  # see TopicRouter._dispatch
    spec: SensorSpec | None = None
    key: str = ""  # the Z2M attribute, or the availability id


class TopicRouter:
    """Maps exact topics to the configured sensors and turns each message into observations."""

    def __init__(self, sensors: Iterable[SensorSpec], z2m_base: str = Z2M, z2m_output: str = "json",
                 tasmota: TasmotaLayout | None = None) -> None:  # fmt: skip
        self.sensors = tuple(sensors)
        self.z2m_base, self.z2m_output = z2m_base, z2m_output
        self.tasmota = tasmota or TasmotaLayout()
        self._routes: dict[str, list[_Route]] = {}
        self._names: dict[str, list[SensorSpec]] = {}
        if any(s.source == Z2M for s in self.sensors):
            self._add(f"{z2m_base}/bridge/state", _Route("availability", key=BRIDGE))
        for spec in self.sensors:
            (self._add_z2m if spec.source == Z2M else self._add_tasmota)(spec)

    def _add(self, topic: str, route: _Route) -> None:
        if route not in self._routes.setdefault(topic, []):
            self._routes[topic].append(route)

    def _add_z2m(self, spec: SensorSpec) -> None:
        state = f"{self.z2m_base}/{spec.device}"
        self._names.setdefault(f"{Z2M}:{spec.device}", []).append(spec)
        self._add(f"{state}/availability", _Route("availability", key=f"{Z2M}:{spec.device}"))
        if self.z2m_output == "attribute":
            for key in Z2M_KEYS[spec.type]:
                self._add(f"{state}/{key}", _Route("z2m_attribute", spec, key))
        else:  # "json", and "attribute_and_json", which also publishes every JSON state: read that once
            self._add(state, _Route("z2m_json", spec))

    def _add_tasmota(self, spec: SensorSpec) -> None:
        topic = self.tasmota.topic
        self._names.setdefault(f"{TASMOTA}:{spec.device}", []).append(spec)
        self._add(topic(TELE, spec.device, "LWT"), _Route("availability", key=f"{TASMOTA}:{spec.device}"))
        if spec.mode == SWITCH_MODE:
            self._add(topic(TELE, spec.device, "SENSOR"), _Route("switch_sensor", spec))
            self._add(topic(STAT, spec.device, "RESULT"), _Route("switch_result", spec))
            for power in _power_keys(spec):  # only to tell a user whose switch still drives the relay
                self._add(topic(STAT, spec.device, power), _Route("relay_hint", spec))
            return
        for power in _power_keys(spec):
            self._add(topic(STAT, spec.device, power), _Route("power_word", spec))
            # Tasmota reads commands in any case (the docs send cmnd/<topic>/Power); subscriptions are exact.
            for spelling in (power, power.capitalize(), power.lower()):
                self._add(topic(CMND, spec.device, spelling), _Route("power_command", spec))
        self._add(topic(STAT, spec.device, "RESULT"), _Route("power_json", spec))
        self._add(topic(TELE, spec.device, "STATE"), _Route("power_json", spec))

    def topics(self) -> list[str]:
        """Every topic to subscribe to (exact, no wildcards)."""
        return sorted(self._routes)

    def devices(self) -> list[str]:
        """The availability ids health reports on, the Z2M bridge included when Z2M is used."""
        return sorted(r.key for routes in self._routes.values() for r in routes if r.kind == "availability")

    def describe(self, device: str) -> str:
        """A device as an operator reads it: "front_door_contact (contact sensor, zone front_door)"."""
        if device == BRIDGE:
            return f"the Zigbee2MQTT bridge ({self.z2m_base}/bridge/state)"
        specs = self._names.get(device, [])
        kinds = sorted({s.type for s in specs})
        zones = sorted({s.zone for s in specs})
        what = "/".join(kinds) + " sensor" + ("s" if len(specs) > 1 else "")
        return f"{device.split(':', 1)[1]} ({what}, zone {', '.join(zones)})" if specs else device

    def route(self, topic: str, payload: bytes, retained: bool = False) -> list[Observation]:
        """The observations in one message (empty for topics or keys we do not use)."""
        return [o for route in self._routes.get(topic, ()) for o in self._dispatch(route, topic, payload, retained)]

    def _dispatch(self, route: _Route, topic: str, payload: bytes, retained: bool) -> Sequence[Observation]:
        if route.kind == "availability":
            online = _online(payload)
            return (
                [BadPayload(topic, "availability")] if online is None else [Availability(route.key, online, retained)]
            )
        spec = route.spec
        assert spec is not None
        if route.kind == "z2m_attribute":
            return _z2m_attribute(topic, spec, route.key, payload, retained)
        if route.kind == "relay_hint":
            return [RelayHint(spec)]
        if route.kind in ("power_word", "power_command"):
            return _power_word(topic, spec, _text(payload), retained, command=route.kind == "power_command")
        body = _json_object(payload)
        if body is None:
            return [BadPayload(topic, "json")]
        if route.kind == "z2m_json":
            return _z2m_json(topic, spec, body, retained)
        if route.kind == "switch_sensor":
            return _switch_value(topic, spec, body.get(f"Switch{spec.switch}"), retained)
        if route.kind == "switch_result":
            switch = body.get(f"Switch{spec.switch}")
            if switch is None:  # a result of another command (POWER, a different switch)
                return [RelayHint(spec)] if any(k in body for k in _power_keys(spec)) else []
            if not isinstance(switch, dict):
                return [BadPayload(topic, "Switch")]
            return _switch_value(topic, spec, switch.get("Action"), retained)
        # power_json: stat RESULT or tele STATE; other commands' results carry no POWER key.
        values = [body[k] for k in _power_keys(spec) if k in body]
        if not values:
            return []
        if not isinstance(values[0], str):
            return [BadPayload(topic, "POWER")]
        return _power_word(topic, spec, values[0], retained, command=False)


def _z2m_state(spec: SensorSpec, value: bool, retained: bool) -> SensorActive:
    # contact: true = closed, false = open; occupancy/presence: true = someone there.
    return SensorActive(spec, not value if spec.type == CONTACT else value, retained)


def _z2m_json(topic: str, spec: SensorSpec, body: dict[str, object], retained: bool) -> list[Observation]:
    keys = [k for k in Z2M_KEYS[spec.type] if k in body and body[k] is not None]
    if not keys:
        return []
    for key in keys:
        if not isinstance(body[key], bool):
            return [BadPayload(topic, key)]
    # A device exposing both occupancy and presence is active while either is.
    return [_z2m_state(spec, any(body[k] for k in keys), retained)]


def _z2m_attribute(topic: str, spec: SensorSpec, key: str, payload: bytes, retained: bool) -> list[Observation]:
    text = _text(payload)
    if text == "":
        return []  # Z2M publishes null as an empty payload
    if text not in ("true", "false"):
        return [BadPayload(topic, key)]
    return [_z2m_state(spec, text == "true", retained)]


def _switch_value(topic: str, spec: SensorSpec, value: object, retained: bool) -> list[Observation]:
    if value is None:
        return []
    if not isinstance(value, str):
        return [BadPayload(topic, "Switch")]
    word = value.upper()
    if word in ("ON", "OFF"):
        return [SensorActive(spec, (word == "ON") == spec.active_on, retained)]
    if word == "TOGGLE":
        return [SensorToggle(spec, retained)]
    return [] if word in NOT_A_STATE else [BadPayload(topic, "Switch")]


def _power_word(topic: str, spec: SensorSpec, text: str, retained: bool, *, command: bool) -> list[Observation]:
    # Commands (cmnd/<topic>/POWER) also accept 0/1/2 and false/true; an empty one is a status query.
    word = text.upper()
    if command:
        word = {"0": "OFF", "FALSE": "OFF", "1": "ON", "TRUE": "ON", "2": "TOGGLE", "3": "BLINK", "4": "BLINKOFF"}.get(
            word, word
        )
        if word == "":
            return []
    if word in ("ON", "OFF"):
        return [SensorActive(spec, (word == "ON") == spec.active_on, retained)]
    if word == "TOGGLE":
        return [SensorToggle(spec, retained)]
    return [] if word in NOT_A_STATE else [BadPayload(topic, "POWER")]
