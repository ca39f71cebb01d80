"""Zigbee2MQTT / Tasmota door and motion sensors as an MQTT input: paho glue around protocol.py."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any, ClassVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from agent.driver_api import BackgroundDriver, DriverError, PresenceChange, Sink
from agent.driver_api.options import REQUIRED, Option, Options, choice, integer, name, string, tables, tcp_port, text
from drivers.mqtt_sensors.protocol import (
    CONTACT,
    MOTION,
    TASMOTA,
    Z2M,
    Availability,
    BadPayload,
    SensorActive,
    SensorSpec,
    TopicRouter,
    ZoneState,
)

CONNACK_TIMEOUT_S = 10.0


def _device(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and not any(c in value for c in "#+") and not value.startswith("/")


def _topic(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and not any(c in value for c in "#+")


SENSOR = Options(
    choice("source", REQUIRED, (Z2M, TASMOTA), fix='use "zigbee2mqtt" or "tasmota"'),
    Option("device", accept=_device, what="a device", fix="use the Z2M friendly name or Tasmota topic"),
    choice("type", REQUIRED, (CONTACT, MOTION), fix='use "contact" or "motion"'),
    name("zone", what="zone"),
    integer("switch", 1, low=1, high=28, fix="use the N of the SwitchN the sensor is on"),
    choice("active_on", "ON", ("ON", "OFF"), fix='use "ON" or "OFF"'),
)


def _sensor(values: dict[str, Any]) -> SensorSpec:
    return SensorSpec(values["source"], values["device"], values["type"], values["zone"], values["switch"],
                      values["active_on"] == "ON")  # fmt: skip


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
        tables("sensors", SENSOR, what="a sensor", fix="add one [[drivers.<name>.sensors]] per sensor"),
    )

    def __init__(self, name: str, *, sensors: list[dict[str, Any]], host: str, port: int, username: str | None,
                 password: str | None, client_id: str | None, z2m_base_topic: str) -> None:  # fmt: skip
        super().__init__(name, backoff_initial_s=1.0, backoff_max_s=30.0)
        self.host, self.port = host, port
        self.username, self.password = username, password
        self.client_id = client_id or f"shopkeeper-{name}-{uuid.uuid4().hex[:8]}"
        self.router = TopicRouter([_sensor(s) for s in sensors], z2m_base_topic)
        self.zones = ZoneState()
        self.availability: dict[str, str] = dict.fromkeys(self.router.devices(), "unknown")
        self._lock = threading.Lock()  # zones and availability
        self._client: mqtt.Client | None = None
        self._connack: Any = None

    def _health_extra(self) -> dict[str, Any]:
        """devices: online, offline or unknown, by device."""
        with self._lock:
            return {"devices": dict(self.availability)}

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
        self._client, self._connack = client, None
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

    def _on_message(self, sink: Sink, message: mqtt.MQTTMessage) -> None:
        observations = self.router.route(message.topic, bytes(message.payload))
        for observation in observations:
            if isinstance(observation, BadPayload):
                with self._health.lock:
                    self._health.bad_frames += 1
                self._report(sink, "bad_frame", f"{observation.topic}: {observation.reason}")
                continue
            with self._health.lock:
                self._health.frames += 1
            if isinstance(observation, Availability):
                with self._lock:
                    self.availability[observation.device] = "online" if observation.online else "offline"
                if not observation.online:
                    self._report(sink, "problem", f"{observation.device} is offline")
                continue
            assert isinstance(observation, SensorActive)
            with self._lock:
                change = self.zones.update(observation)
            if change is not None and not self._emit(sink, PresenceChange(observation.sensor.zone, change)):
                return
