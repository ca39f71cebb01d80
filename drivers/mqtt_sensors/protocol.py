"""Zigbee2MQTT and Tasmota door/motion messages: pure topic routing and payload parsing, no I/O.

Topics and payloads (protocols.md 5):

    zigbee2mqtt/<friendly_name>               {"contact": false, ...} (false = open) or {"occupancy": true, ...}
    zigbee2mqtt/<friendly_name>/availability  online | offline | {"state": "online"}
    zigbee2mqtt/bridge/state                  online | offline | {"state": "online"}
    tele/<topic>/LWT                          Online | Offline
    tele/<topic>/SENSOR                       {"Time": "...", "Switch1": "ON"}
    stat/<topic>/RESULT                       {"Switch1": {"Action": "ON"}}

Friendly names may contain "/", so topics are matched exactly against the configured sensors,
never split. A message that concerns a configured device but cannot be read is "bad"; a message
without the sensor's key (a battery-only update) is ignored. The Tasmota `Time` field is device
local time without a zone and is not used.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable

Z2M = "zigbee2mqtt"
TASMOTA = "tasmota"
CONTACT = "contact"
MOTION = "motion"


@dataclasses.dataclass(frozen=True, slots=True)
class SensorSpec:
    """One configured sensor: where it publishes, what it is, which zone it belongs to."""

    source: str  # "zigbee2mqtt" or "tasmota"
    device: str  # Z2M friendly name or Tasmota topic
    type: str  # "contact" or "motion"
    zone: str
    switch: int = 1  # Tasmota SwitchN
    active_on: bool = True  # Tasmota: does "ON" mean open/motion?

    @property
    def key(self) -> str:
        """A stable id for health: "zigbee2mqtt:front_door" or "tasmota:backdoor:Switch1"."""
        return f"{self.source}:{self.device}" + (f":Switch{self.switch}" if self.source == TASMOTA else "")


@dataclasses.dataclass(frozen=True, slots=True)
class SensorActive:
    """A sensor reports open (contact) or motion (occupancy)."""

    sensor: SensorSpec
    active: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Availability:
    """A device (or the Z2M bridge, device "bridge") went online or offline."""

    device: str  # "zigbee2mqtt:bridge", "zigbee2mqtt:<name>" or "tasmota:<topic>"
    online: bool


@dataclasses.dataclass(frozen=True, slots=True)
class BadPayload:
    """A message for a configured device that could not be read."""

    topic: str
    reason: str


Observation = SensorActive | Availability | BadPayload


def _online(payload: bytes) -> bool | None:
    text = payload.decode("utf-8", "replace").strip()
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
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


class TopicRouter:
    """Maps exact topics to the configured sensors and turns each message into observations."""

    def __init__(self, sensors: Iterable[SensorSpec], z2m_base: str = Z2M) -> None:
        self.sensors = tuple(sensors)
        self.z2m_base = z2m_base
        self._state: dict[str, list[SensorSpec]] = {}
        self._availability: dict[str, str] = {f"{z2m_base}/bridge/state": f"{Z2M}:bridge"}
        self._tasmota_result: dict[str, list[SensorSpec]] = {}
        for spec in self.sensors:
            if spec.source == Z2M:
                self._state.setdefault(f"{z2m_base}/{spec.device}", []).append(spec)
                self._availability[f"{z2m_base}/{spec.device}/availability"] = f"{Z2M}:{spec.device}"
            else:
                self._state.setdefault(f"tele/{spec.device}/SENSOR", []).append(spec)
                self._tasmota_result.setdefault(f"stat/{spec.device}/RESULT", []).append(spec)
                self._availability[f"tele/{spec.device}/LWT"] = f"{TASMOTA}:{spec.device}"

    def topics(self) -> list[str]:
        """Every topic to subscribe to (exact, no wildcards)."""
        return sorted({*self._state, *self._availability, *self._tasmota_result})

    def devices(self) -> list[str]:
        """The availability ids health reports on, bridge included when Z2M is used."""
        return sorted(set(self._availability.values()) - ({f"{Z2M}:bridge"} if not self._uses_z2m() else set()))

    def _uses_z2m(self) -> bool:
        return any(s.source == Z2M for s in self.sensors)

    def route(self, topic: str, payload: bytes) -> list[Observation]:
        """The observations in one message (empty for topics or keys we do not use)."""
        if topic in self._availability:
            online = _online(payload)
            if online is None:
                return [BadPayload(topic, "availability")]
            return [Availability(self._availability[topic], online)]
        if topic in self._state:
            return [o for spec in self._state[topic] for o in self._state_message(topic, spec, payload)]
        if topic in self._tasmota_result:
            return [o for spec in self._tasmota_result[topic] for o in self._result_message(topic, spec, payload)]
        return []

    def _state_message(self, topic: str, spec: SensorSpec, payload: bytes) -> list[Observation]:
        body = _json_object(payload)
        if body is None:
            return [BadPayload(topic, "json")]
        if spec.source == Z2M:
            key = CONTACT if spec.type == CONTACT else "occupancy"
            if key not in body:
                return []
            value = body[key]
            if not isinstance(value, bool):
                return [BadPayload(topic, key)]
            # contact: true = closed, false = open; occupancy: true = motion.
            return [SensorActive(spec, not value if spec.type == CONTACT else value)]
        return self._switch_value(topic, spec, body.get(f"Switch{spec.switch}"))

    def _result_message(self, topic: str, spec: SensorSpec, payload: bytes) -> list[Observation]:
        body = _json_object(payload)
        if body is None:
            return [BadPayload(topic, "json")]
        switch = body.get(f"Switch{spec.switch}")
        if switch is None:
            return []  # a result for another command (POWER, a different switch)
        if not isinstance(switch, dict):
            return [BadPayload(topic, "Switch")]
        return self._switch_value(topic, spec, switch.get("Action"))

    def _switch_value(self, topic: str, spec: SensorSpec, value: object) -> list[Observation]:
        if value is None:
            return []
        if value not in ("ON", "OFF"):
            return [BadPayload(topic, "Switch")]
        return [SensorActive(spec, (value == "ON") == spec.active_on)]


@dataclasses.dataclass
class ZoneState:
    """A zone is present while any of its sensors is active; reports only changes."""

    active: dict[SensorSpec, bool] = dataclasses.field(default_factory=dict)
    present: dict[str, bool] = dataclasses.field(default_factory=dict)

    def update(self, observation: SensorActive) -> bool | None:
        """The zone's new presence if this observation changed it, else None."""
        self.active[observation.sensor] = observation.active
        zone = observation.sensor.zone
        now = any(active for spec, active in self.active.items() if spec.zone == zone)
        if self.present.get(zone) == now:
            return None
        self.present[zone] = now
        return now
