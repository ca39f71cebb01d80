"""Zigbee2MQTT / Tasmota door and motion sensors as an MQTT input: paho glue around protocol.py."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Mapping
from importlib import resources
from typing import Any, ClassVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.driver_api import DriverHealth, DriverOptionError, PresenceChange, Sink
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

ZONE_NAME = re.compile(r"^[a-z0-9_-]{1,64}$")
OPTIONS = ("host", "port", "username", "password", "client_id", "z2m_base_topic", "sensors")
SENSOR_KEYS = ("source", "device", "type", "zone", "switch", "active_on")


def _sensor(index: int, raw: object) -> SensorSpec:
    key = f"sensors[{index}]"
    if not isinstance(raw, Mapping):
        raise DriverOptionError(key, "is not a table", "write [[drivers.<name>.sensors]] tables")
    for name in raw:
        if name not in SENSOR_KEYS:
            raise DriverOptionError(
                f"{key}.{name}", "unknown option", f"remove it; a sensor takes {', '.join(SENSOR_KEYS)}"
            )
    source = raw.get("source")
    if source not in (Z2M, TASMOTA):
        raise DriverOptionError(f"{key}.source", f"{source!r} is not a source", 'use "zigbee2mqtt" or "tasmota"')
    device = raw.get("device")
    if not isinstance(device, str) or not device or any(c in device for c in "#+") or device.startswith("/"):
        raise DriverOptionError(
            f"{key}.device", f"{device!r} is not a device", "use the Z2M friendly name or Tasmota topic"
        )
    kind = raw.get("type")
    if kind not in (CONTACT, MOTION):
        raise DriverOptionError(f"{key}.type", f"{kind!r} is not a sensor type", 'use "contact" or "motion"')
    zone = raw.get("zone")
    if not isinstance(zone, str) or not ZONE_NAME.match(zone):
        raise DriverOptionError(
            f"{key}.zone", f"{zone!r} is not a zone name", 'use lowercase letters, digits, "_" or "-"'
        )
    switch = raw.get("switch", 1)
    if isinstance(switch, bool) or not isinstance(switch, int) or not 1 <= switch <= 28:
        raise DriverOptionError(f"{key}.switch", f"{switch!r} is not 1-28", "use the N of the SwitchN the sensor is on")
    active_on = raw.get("active_on", "ON")
    if active_on not in ("ON", "OFF"):
        raise DriverOptionError(f"{key}.active_on", f"{active_on!r} is not ON or OFF", 'use "ON" or "OFF"')
    return SensorSpec(source, device, kind, zone, switch, active_on == "ON")


class MqttSensorsDriver:
    """Subscribes to the shop's local broker and emits PresenceChange per zone from door/motion sensors."""

    kind: ClassVar[str] = "mqtt_sensors"

    def __init__(
        self,
        name: str,
        sensors: list[SensorSpec],
        *,
        host: str = "127.0.0.1",
        port: int = 1883,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
        z2m_base_topic: str = Z2M,
    ) -> None:
        self.name, self.host, self.port = name, host, port
        self.username, self.password = username, password
        self.client_id = client_id or f"shopkeeper-{name}-{uuid.uuid4().hex[:8]}"
        self.router = TopicRouter(sensors, z2m_base_topic)
        self.zones = ZoneState()
        self.availability: dict[str, str] = dict.fromkeys(self.router.devices(), "unknown")
        self.reconnect_min_s, self.reconnect_max_s = 1, 30
        self._health = DriverHealth()
        self._lock = threading.Lock()  # zones and availability
        self._emit_lock = threading.Lock()
        self._stopped = False
        self._client: mqtt.Client | None = None
        self._ever_connected = False

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, Any]) -> MqttSensorsDriver:
        """Validate options without any I/O; raise DriverOptionError on the first bad key."""
        for key in options:
            if key not in (*OPTIONS, "kind"):
                raise DriverOptionError(key, "unknown option", f"remove it; mqtt_sensors takes {', '.join(OPTIONS)}")
        host = options.get("host", "127.0.0.1")
        if not isinstance(host, str) or not host:
            raise DriverOptionError(
                "host", f"{host!r} is not a host name", 'use "127.0.0.1" for the broker on this box'
            )
        port = options.get("port", 1883)
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise DriverOptionError("port", f"{port!r} is not a TCP port", "use 1883")
        for key in ("username", "password", "client_id"):
            if key in options and not isinstance(options[key], str):
                raise DriverOptionError(key, "is not a string", "quote it")
        base = options.get("z2m_base_topic", Z2M)
        if not isinstance(base, str) or not base or any(c in base for c in "#+"):
            raise DriverOptionError("z2m_base_topic", f"{base!r} is not a topic", 'use "zigbee2mqtt" (the default)')
        raw = options.get("sensors")
        if not isinstance(raw, list) or not raw:
            raise DriverOptionError("sensors", "missing or empty", "add one [[drivers.<name>.sensors]] per sensor")
        sensors = [_sensor(i, entry) for i, entry in enumerate(raw)]
        return cls(
            name,
            sensors,
            host=host,
            port=port,
            username=options.get("username"),
            password=options.get("password"),
            client_id=options.get("client_id"),
            z2m_base_topic=base,
        )

    @classmethod
    def sample_config(cls) -> str:
        """The commented sample.toml text."""
        return resources.files("drivers.mqtt_sensors").joinpath("sample.toml").read_text(encoding="utf-8")

    def doors(self) -> list[str]:
        """Contacts and PIRs report presence per zone, never door counts."""
        return []

    def health(self) -> dict[str, Any]:
        """connected (to the broker), frames, bad_frames, reconnects, last_error, devices (online/offline)."""
        with self._lock:
            devices = dict(self.availability)
        return {**self._health.snapshot(), "devices": devices}

    def start(self, sink: Sink) -> None:
        """Connect in the background; paho reconnects on its own and we resubscribe on every connect."""
        if self._client is not None:
            raise RuntimeError(f"driver {self.name} already started")
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=True)
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        client.reconnect_delay_set(self.reconnect_min_s, self.reconnect_max_s)
        client.on_connect = lambda c, u, flags, reason, props: self._on_connect(sink, c, reason)
        client.on_disconnect = lambda c, u, flags, reason, props: self._on_disconnect(sink, reason)
        client.on_message = lambda c, u, message: self._on_message(sink, message)
        self._client = client
        client.connect_async(self.host, self.port, keepalive=30)
        client.loop_start()

    def stop(self) -> None:
        """Disconnect; once this returns nothing more reaches the sink."""
        with self._emit_lock:
            self._stopped = True
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
        with self._health.lock:
            self._health.connected = False

    def _report(self, sink: Sink, kind: str, text: str) -> None:
        with self._emit_lock:
            if self._stopped:
                return
            if kind == "problem":
                sink.problem(self.name, text)
            else:
                sink.bad_frame(self.name, text)

    def _on_connect(self, sink: Sink, client: mqtt.Client, reason: Any) -> None:
        if reason.is_failure:
            with self._health.lock:
                self._health.last_error = f"CONNACK {reason}"
            self._report(sink, "problem", f"mqtt {self.host}:{self.port}: connection refused ({reason})")
            return
        client.subscribe([(topic, 1) for topic in self.router.topics()])
        with self._health.lock:
            self._health.connected = True
            self._health.reconnects += int(self._ever_connected)
        self._ever_connected = True

    def _on_disconnect(self, sink: Sink, reason: Any) -> None:
        with self._health.lock:
            was_connected, self._health.connected = self._health.connected, False
            self._health.last_error = f"disconnected: {reason}"
        if was_connected:
            self._report(sink, "problem", f"mqtt {self.host}:{self.port}: disconnected ({reason}); reconnecting")

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
            if change is not None:
                with self._emit_lock:
                    if self._stopped:
                        return
                    sink.emit(PresenceChange(observation.sensor.zone, change))
