"""Home Assistant on the shop's own network: MQTT discovery and the exact figures, on a LOCAL broker only.

The shop's own data, exact, for the shop's own home automation: door entries and exits of the last
window per door and for the whole shop, and (with a POS) its baskets and sales. This client is not the
coop's: it is a second paho client with its own connection, to the broker the owner names in
`[home_assistant]` (agent/config/home_assistant.py refuses the coop's broker and the coop's topic root).
It reads the store's raw tables itself, never the outbox, and nothing it computes reaches the release
path: the publisher (agent/pipeline/publish.py) still sends only outbox rows to the coop.

Topics follow Home Assistant's MQTT discovery as documented with its MQTT integration
(https://www.home-assistant.io/integrations/mqtt/, "MQTT Discovery"): a retained JSON config per entity on
`<discovery_prefix>/sensor/<node_id>/<object_id>/config` naming its `state_topic`, `unique_id` and the
`device` it belongs to; an `availability_topic` with a retained "online" and a last will "offline"; and the
configs are sent again when Home Assistant announces itself ("online" on `<discovery_prefix>/status`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent import __version__
from agent.config import AgentConfig
from agent.config.home_assistant import HomeAssistantSettings
from agent.contract.secrets import resolve_secret
from agent.store import Store
from agent.store.raw_events import door_totals_between, sales_between

log = logging.getLogger(__name__)
NS_PER_S = 1_000_000_000


@dataclasses.dataclass(frozen=True)
class Entity:
    """One Home Assistant sensor: its object id, its name, its unit and how it is summed."""

    object_id: str
    name: str
    unit: str
    icon: str


def entities(config: AgentConfig, currency: str) -> list[Entity]:
    """The sensors of this shop: per door and for the whole shop, and sales when a POS is configured."""
    found = []
    for door in (*config.doors, "shop"):
        label = "Whole shop" if door == "shop" else f"{door.capitalize()} door"
        found.append(Entity(f"{door}_entries", f"{label} entries, last window", "people", "mdi:account-arrow-right"))
        found.append(Entity(f"{door}_exits", f"{label} exits, last window", "people", "mdi:account-arrow-left"))
    if config.pos is not None:
        found.append(Entity("baskets", "Baskets, last window", "baskets", "mdi:basket"))
        found.append(Entity("sales", "Sales, last window", currency, "mdi:cash-register"))
    found.append(Entity("window_start", "Last window started", "", "mdi:clock-outline"))
    return found


def discovery(config: AgentConfig, settings: HomeAssistantSettings) -> dict[str, str]:
    """topic -> retained JSON config of every entity (Home Assistant's discovery format)."""
    node = config.store.replace("-", "_")
    device = {
        "identifiers": [f"shopkeeper_{node}"],
        "name": f"shopkeeper {config.store}",
        "manufacturer": "shopkeeper",
        "model": "shop agent",
        "sw_version": __version__,
    }
    configs = {}
    for entity in entities(config, settings.currency):
        payload: dict[str, Any] = {
            "name": entity.name,
            "unique_id": f"shopkeeper_{node}_{entity.object_id}",
            "state_topic": state_topic(settings, entity.object_id),
            "availability_topic": availability_topic(settings),
            "icon": entity.icon,
            "device": device,
        }
        if entity.unit:
            payload["unit_of_measurement"] = entity.unit
            payload["state_class"] = "measurement"
        topic = f"{settings.discovery_prefix}/sensor/{node}/{entity.object_id}/config"
        configs[topic] = json.dumps(payload, sort_keys=True)
    return configs


def state_topic(settings: HomeAssistantSettings, object_id: str) -> str:
    return f"{settings.state_prefix}/{object_id}"


def availability_topic(settings: HomeAssistantSettings) -> str:
    return f"{settings.state_prefix}/availability"


def exact_states(store: Store, config: AgentConfig, now_ns: int) -> dict[str, str]:
    """object id -> exact value of the last complete window (the shop's own figures, from the raw tables)."""
    window_ns = config.window_s * NS_PER_S
    end = now_ns - now_ns % window_ns
    start = end - window_ns
    conn = store.conn()
    doors = door_totals_between(conn, start, end)
    # The window first: a listener that sees it change knows the values before it were the last window's.
    states: dict[str, str] = {"window_start": _iso(start)}
    for door in config.doors:
        entries, exits = doors.get(door, (0, 0))
        states[f"{door}_entries"], states[f"{door}_exits"] = str(entries), str(exits)
    states["shop_entries"] = str(sum(e for e, _x in doors.values()))
    states["shop_exits"] = str(sum(x for _e, x in doors.values()))
    if config.pos is not None:
        baskets, cents = sales_between(conn, start, end)
        states["baskets"], states["sales"] = str(baskets), f"{cents // 100}.{cents % 100:02d}"
    return states


def _iso(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns // NS_PER_S, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class HomeAssistantBridge:
    """A paho client of its own on the shop's broker: discovery configs once per connection, states on change."""

    def __init__(
        self, store: Store, config: AgentConfig, settings: HomeAssistantSettings, wall_ns: Callable[[], int]
    ) -> None:
        self.store, self.config, self.settings, self.wall_ns = store, config, settings, wall_ns
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=settings.client_id)
        self.client.enable_logger(logging.getLogger("paho.home_assistant"))
        self.client.reconnect_delay_set(min_delay=1, max_delay=60)
        if settings.username:
            self.client.username_pw_set(settings.username, resolve_secret(settings.password) or None)
        self.client.will_set(availability_topic(settings), "offline", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_message = self._on_message
        self._lock = threading.Lock()
        self._sent: dict[str, str] = {}  # state topic -> value last handed to paho on this connection
        self.connected = False
        self._down_reported = False  # one log line per outage, not one per retry

    @property
    def where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def start(self) -> None:
        self.client.connect_async(self.settings.host, self.settings.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        if self.connected:
            self.client.publish(availability_topic(self.settings), "offline", qos=1, retain=True).wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()

    def publish_states(self) -> int:
        """Send the states that changed since they were last sent; the number sent (0 while disconnected)."""
        if not self.connected:
            return 0
        sent = 0
        for object_id, value in exact_states(self.store, self.config, self.wall_ns()).items():
            topic = state_topic(self.settings, object_id)
            with self._lock:
                if self._sent.get(topic) == value:
                    continue
                self._sent[topic] = value
            self.client.publish(topic, value, qos=1, retain=True)
            sent += 1
        return sent

    def _announce(self) -> None:
        for topic, payload in discovery(self.config, self.settings).items():
            self.client.publish(topic, payload, qos=1, retain=True)
        self.client.publish(availability_topic(self.settings), "online", qos=1, retain=True)
        with self._lock:
            self._sent.clear()  # every state again, after the configs

    # -- paho callbacks (network thread) ---------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, _flags: Any, reason_code: Any, _p: Any) -> None:
        if reason_code.is_failure:
            if not self._down_reported:
                log.warning("home assistant: the shop's broker %s refused the connection: %s", self.where, reason_code)
                self._down_reported = True
            return
        log.info("home assistant: connected to the shop's broker %s", self.where)
        self._down_reported = False
        client.subscribe(f"{self.settings.discovery_prefix}/status", qos=1)
        self._announce()
        self.connected = True

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _flags: Any, reason_code: Any, _p: Any) -> None:
        if self.connected:
            log.warning("home assistant: lost the shop's broker %s (%s); reconnecting", self.where, reason_code)
            self._down_reported = True
        self.connected = False

    def _on_connect_fail(self, _c: mqtt.Client, _u: Any) -> None:
        if not self._down_reported:
            log.warning("home assistant: cannot reach the shop's broker %s; retrying (check [home_assistant])",
                        self.where)  # fmt: skip
            self._down_reported = True

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        if message.payload == b"online":  # Home Assistant restarted: it asks for the configs again
            self._announce()
