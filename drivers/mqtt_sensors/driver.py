"""Zigbee2MQTT / Tasmota door, motion and presence sensors as an MQTT input: paho glue around protocol.py."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any, ClassVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from agent.driver_api import BackgroundDriver, DriverError, DriverOptionError, PresenceChange, Sink
from agent.driver_api.options import REQUIRED, Option, Options, choice, integer, name, string, tables, tcp_port, text
from drivers.mqtt_sensors.protocol import (
    CONTACT,
    DEFAULT_FULL_TOPIC,
    DEFAULT_PREFIXES,
    MOTION,
    PRESENCE,
    RELAY_MODE,
    SWITCH_MODE,
    TASMOTA,
    Z2M,
    Z2M_OUTPUTS,
    Availability,
    BadPayload,
    RelayHint,
    SensorSpec,
    TasmotaLayout,
    TopicRouter,
    full_topic_problem,
)
from drivers.mqtt_sensors.zones import ZoneState

CONNACK_TIMEOUT_S = 10.0
log = logging.getLogger(__name__)


def _device(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and not any(c in value for c in "#+") and not value.startswith("/")


def _topic(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and not any(c in value for c in "#+")


def _full_topic(value: Any) -> bool:
    return isinstance(value, str) and full_topic_problem(value) is None


def _prefixes(value: Any) -> bool:
    return (
        isinstance(value, list | tuple)
        and len(value) == 3
        and all(isinstance(p, str) and p and not any(c in p for c in "/#+%") for p in value)
    )


def _tasmota_only(values: dict[str, Any]) -> None:
    # A Zigbee2MQTT sensor with a Tasmota key set would be read as if the key did nothing: say so instead.
    if values["source"] != Z2M:
        return
    for key, default in (("switch", 1), ("active_on", "ON"), ("mode", SWITCH_MODE)):
        if values[key] != default:
            raise DriverOptionError(key, "is for Tasmota sensors only", "remove it from this zigbee2mqtt sensor")


SENSOR = Options(
    choice("source", REQUIRED, (Z2M, TASMOTA), fix='use "zigbee2mqtt" or "tasmota"'),
    Option("device", accept=_device, what="a device", fix="use the Z2M friendly name or Tasmota topic"),
    choice("type", REQUIRED, (CONTACT, MOTION, PRESENCE), fix='use "contact", "motion" or "presence"'),
    name("zone", what="zone"),
    integer("switch", 1, low=1, high=28, fix="use the N of the SwitchN the sensor is on"),
    choice("active_on", "ON", ("ON", "OFF"), fix='use "ON" or "OFF"'),
    choice(
        "mode",
        SWITCH_MODE,
        (SWITCH_MODE, RELAY_MODE),
        fix='use "switch" (SetOption114 or SwitchMode 15) or "relay" (the switch drives its relay: POWER messages)',
    ),
    checks=(_tasmota_only,),
)


def _sensor(values: dict[str, Any]) -> SensorSpec:
    return SensorSpec(values["source"], values["device"], values["type"], values["zone"], values["switch"],
                      values["active_on"] == "ON", values["mode"])  # fmt: skip


def _utc(wall: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall))


class MqttSensorsDriver(BackgroundDriver):
    """Subscribes to the shop's local broker and emits PresenceChange per zone from door/motion sensors."""

    kind: ClassVar[str] = "mqtt_sensors"
    options: ClassVar[Options] = Options(
        text("host", "127.0.0.1", what="a host name", fix='use "127.0.0.1" for the broker on this box'),
        tcp_port("port", 1883),
        string("username", None),
        string("password", None),
        string("client_id", None),
        Option("z2m_base_topic", Z2M, _topic, "a topic", 'use "zigbee2mqtt" (the default)'),
        choice("z2m_output", "json", Z2M_OUTPUTS, fix="use Zigbee2MQTT's advanced.output setting"),
        Option("tasmota_full_topic", DEFAULT_FULL_TOPIC, _full_topic, "a FullTopic with %prefix% and %topic%",
               'use Tasmota\'s FullTopic, e.g. "%prefix%/%topic%/" (the default) or "shop/%topic%/%prefix%/"'),
        Option("tasmota_prefixes", DEFAULT_PREFIXES, _prefixes, "three prefixes", 'use Tasmota\'s Prefix1, '
               'Prefix2 and Prefix3, e.g. ["cmnd", "stat", "tele"] (the default)', convert=tuple),
        tables("sensors", SENSOR, what="a sensor", fix="add one [[drivers.<name>.sensors]] per sensor"),
    )  # fmt: skip

    def __init__(self, name: str, *, sensors: list[dict[str, Any]], host: str, port: int, username: str | None,
                 password: str | None, client_id: str | None, z2m_base_topic: str, z2m_output: str,
                 tasmota_full_topic: str, tasmota_prefixes: tuple[str, str, str]) -> None:  # fmt: skip
        super().__init__(name, backoff_initial_s=1.0, backoff_max_s=30.0)
        self.host, self.port = host, port
        self.username, self.password = username, password
        self.client_id = client_id or f"shopkeeper-{name}-{uuid.uuid4().hex[:8]}"
        layout = TasmotaLayout(tasmota_full_topic, tasmota_prefixes)
        self.router = TopicRouter([_sensor(s) for s in sensors], z2m_base_topic, z2m_output, layout)
        self.zones = ZoneState()
        self.availability: dict[str, str] = dict.fromkeys(self.router.devices(), "unknown")
        # When the driver learned a device went offline: wall time for the operator, monotonic for durations.
        self._offline_since: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()  # zones and availability
        self._client: mqtt.Client | None = None
        self._connack: Any = None
        self._subscribed = False  # SUBACK received for this connection
        self._switch_seen: set[SensorSpec] = set()  # switch-mode sensors that sent a SwitchN message
        self._hinted: set[SensorSpec] = set()
        self._refused: list[str] = []  # topics the broker refused (an ACL), for degraded

    def _health_extra(self) -> dict[str, Any]:
        """devices (online, offline or unknown), sensors (state and changes) and degraded (why, or "")."""
        with self._lock:
            return {
                "subscribed": self._subscribed,
                "devices": dict(self.availability),
                "sensors": self.zones.snapshot(),
                "degraded": self._degraded(),
            }

    def _degraded(self) -> str:
        offline = sorted(self._offline_since.items(), key=lambda item: (item[1], item[0]))
        reasons = [f"{self.router.describe(d)} offline since {_utc(wall)}" for d, (wall, _) in offline]
        if self._refused:
            reasons.append(f"the broker refused the subscription to {', '.join(self._refused)}")
        return "; ".join(reasons)

    def _where(self) -> str:
        return f"mqtt {self.host}:{self.port}"

    def _connect(self, sink: Sink) -> None:
        # paho's own loop thread and reconnect timer are not used: the base's loop owns both, so the
        # stop gate, the backoff and the outage report are the same as every other driver's.
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=True)
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        client.on_connect = lambda c, u, flags, reason, props: self._on_connect(c, reason)
        client.on_message = lambda c, u, message: self._on_message(sink, message)
        client.on_subscribe = lambda c, u, mid, codes, props: self._on_subscribe(sink, codes)
        self._client, self._connack = client, None
        with self._lock:
            self._subscribed = False
        client.connect(self.host, self.port, keepalive=30)  # OSError while the broker is down
        deadline = time.monotonic() + CONNACK_TIMEOUT_S
        while self._connack is None and not self._stop.is_set():
            self._loop_once(client)
            if time.monotonic() > deadline:
                raise DriverError(f"no CONNACK within {CONNACK_TIMEOUT_S:g} s")
        if self._connack is not None and self._connack.is_failure:
            raise DriverError(f"connection refused ({self._connack})")

    def _session(self, sink: Sink) -> None:
        assert self._client is not None
        while not self._stop.is_set():
            self._loop_once(self._client)

    def _loop_once(self, client: mqtt.Client) -> None:
        code = client.loop(timeout=0.1)
        if code != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise DriverError(f"disconnected ({mqtt.error_string(code)})")

    def _disconnect(self) -> None:
        with self._lock:
            self._subscribed = False
        client, self._client = self._client, None
        if client is None:
            return
        client.disconnect()
        client.loop_write()  # sends DISCONNECT, so the broker drops the session at once
        sock = client.socket()
        if sock is not None:
            sock.close()

    def _on_connect(self, client: mqtt.Client, reason: Any) -> None:
        self._connack = reason
        if not reason.is_failure:
            client.subscribe([(topic, 1) for topic in self.router.topics()])

    def _on_subscribe(self, sink: Sink, codes: list[Any]) -> None:
        # One SUBSCRIBE for all topics, so the reason codes are in the order of router.topics().
        refused = [topic for topic, code in zip(self.router.topics(), codes, strict=False) if code.is_failure]
        with self._lock:
            self._subscribed, self._refused = True, refused
        if refused:
            self._report(
                sink, "problem", f"the broker refused the subscription to {', '.join(refused)} (check its ACL)"
            )

    def _on_message(self, sink: Sink, message: mqtt.MQTTMessage) -> None:
        # The broker sets retain only on what it delivers because we subscribed: stored state, not news.
        observations = self.router.route(message.topic, bytes(message.payload), bool(message.retain))
        for observation in observations:
            if isinstance(observation, BadPayload):
                with self._health.lock:
                    self._health.bad_frames += 1
                self._report(sink, "bad_frame", f"{observation.topic}: {observation.reason}")
                continue
            with self._health.lock:
                self._health.frames += 1
            if isinstance(observation, Availability):
                self._on_availability(sink, observation)
                continue
            if isinstance(observation, RelayHint):
                self._relay_hint(sink, observation.sensor)
                continue
            self._switch_seen.add(observation.sensor)
            with self._lock:
                change = self.zones.update(observation)
            if change is not None and not self._emit(sink, PresenceChange(observation.sensor.zone, change)):
                return

    def _relay_hint(self, sink: Sink, spec: SensorSpec) -> None:
        # Tasmota's default is relay mode: a sensor configured as a detached switch would then stay silent.
        if spec in self._switch_seen or spec in self._hinted:
            return
        self._hinted.add(spec)
        self._report(
            sink,
            "problem",
            f"{self.router.describe(f'{TASMOTA}:{spec.device}')} reports its relay (POWER) but has sent no "
            f'Switch{spec.switch} message yet: if Switch{spec.switch} drives the relay, set mode = "relay" for '
            "this sensor, or detach it with SetOption114 1",
        )

    def _on_availability(self, sink: Sink, observation: Availability) -> None:
        """Record the change; one problem (and log line) when a device goes offline, one when it is back."""
        device, now = observation.device, "online" if observation.online else "offline"
        with self._lock:
            before = self.availability.get(device)
            if before == now:
                return
            self.availability[device] = now
            if now == "offline":
                self._offline_since[device] = (time.time(), time.monotonic())
            since = self._offline_since.pop(device, None) if now == "online" else None
        what = self.router.describe(device)
        if now == "offline":
            self._report(sink, "problem", f"{what} is offline" + (" (retained state)" if observation.retained else ""))
        elif before == "offline" and since is not None:
            log.info("driver %s: %s is back online after %d s offline", self.name, what, time.monotonic() - since[1])
