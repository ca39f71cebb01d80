"""Publish the outbox to the coop's broker: oldest first, QoS 1, delivered only on PUBACK.

The publisher reads only the outbox, which only the privacy release writes (DESIGN.md promise 1).
At most `max_inflight` messages are outstanding; paho retransmits those after a reconnect, and on a
restart every undelivered row is sent again under its stable message id, which the hub de-duplicates.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent import __version__
from agent.clock import NS_PER_S, Clock
from agent.config import AgentConfig
from agent.coop import district
from agent.store import Store

log = logging.getLogger(__name__)


class Publisher:
    """Owns the MQTT connection and drains the outbox in sequence order."""

    def __init__(self, config: AgentConfig, store: Store, clock: Clock | None = None) -> None:
        self.config, self.store = config, store
        self.clock = clock
        # Sent a full window after its end or later: flagged as late (MQTT v5 user property).
        self.late_after_ns = 2 * config.window_s * NS_PER_S
        self.settings = config.mqtt
        self.v5 = self.settings.protocol == "v5"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.settings.client_id,
            protocol=mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311,
        )
        self.client.enable_logger(logging.getLogger("paho"))
        self.client.max_inflight_messages_set(self.settings.max_inflight)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        if self.settings.username:
            self.client.username_pw_set(self.settings.username, self.settings.password or None)
        if self.settings.tls_ca_file:
            self.client.tls_set(
                ca_certs=self.settings.tls_ca_file,
                certfile=self.settings.tls_cert_file or None,
                keyfile=self.settings.tls_key_file or None,
            )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self._cond = threading.Condition()
        self._connected = False
        self._inflight: dict[int, int] = {}  # paho mid -> outbox seq
        self._acked: list[int] = []
        self._early_acks: set[int] = set()
        self._last_queued_seq = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self.delivered = 0
        self._set_will(self._connections() + 1)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self.client.connect_async(self.settings.host, self.settings.port, keepalive=self.settings.keepalive_s)
        self.client.loop_start()
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Say goodbye (retained offline status), disconnect and stop the threads."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if self._connected:
            info = self.client.publish(
                self.config.status_topic, self._status("offline", self._connections()), qos=1, retain=True
            )
            info.wait_for_publish(timeout)
        self.client.disconnect()
        self.client.loop_stop()

    def wake(self) -> None:
        """Tell the publisher new outbox rows exist."""
        with self._cond:
            self._cond.notify_all()

    @property
    def connected(self) -> bool:
        return self._connected

    # -- paho callbacks (network thread) ---------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any, _properties: Any) -> None:
        if reason_code.is_failure:
            log.warning("broker refused the connection: %s", reason_code)
            return
        # The counter goes up only after a successful CONNACK, so it counts real sessions.
        with self.store.transaction() as conn:
            number = self._connections() + 1
            Store.set_state(conn, "mqtt_connections", str(number))
        client.publish(self.config.status_topic, self._status("online", number), qos=1, retain=True)
        for topic in district.subscriptions(self.config):
            client.subscribe(topic, qos=1)
        self._set_will(number + 1)
        log.info("connected to %s:%s (connection %d)", self.settings.host, self.settings.port, number)
        with self._cond:
            self._connected = True
            self._cond.notify_all()

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any, _properties: Any
    ) -> None:
        with self._cond:
            self._connected = False
        if not self._stopping:
            log.warning("disconnected from broker (%s); reconnecting with backoff", reason_code)

    def _on_publish(self, _client: mqtt.Client, _userdata: Any, mid: int, _reason_code: Any, _properties: Any) -> None:
        with self._cond:
            seq = self._inflight.pop(mid, None)
            if seq is None:
                self._early_acks.add(mid)
            else:
                self._acked.append(seq)
            self._cond.notify_all()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        district.record(self.store, message.topic, bytes(message.payload))

    # -- the drain loop (publisher thread) -------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                acked, self._acked = self._acked, []
                room = self.settings.max_inflight - len(self._inflight) if self._connected else 0
            if acked:
                self._mark_delivered(acked)
            sent = self._send_next(room) if room > 0 else 0
            with self._cond:
                if not self._acked and not self._stopping and (sent == 0 or not self._connected):
                    self._cond.wait(timeout=0.5)

    def _send_next(self, room: int) -> int:
        rows = (
            self.store.conn()
            .execute(
                "SELECT seq, msg_id, topic, payload, window_start_ns FROM outbox"
                " WHERE delivered_wall_ns IS NULL AND seq > ? ORDER BY seq LIMIT ?",
                (self._last_queued_seq, room),
            )
            .fetchall()
        )
        now = self.clock.wall_ns() if self.clock else None
        for seq, msg_id, topic, payload, window_start in rows:
            late = now is not None and now - window_start > self.late_after_ns
            # Not under self._cond: paho calls on_publish while holding its own message lock, so
            # holding ours across publish() would invert the lock order and deadlock.
            info = self.client.publish(topic, payload, qos=1, properties=self._properties(msg_id, late))
            with self._cond:
                self._last_queued_seq = seq
                if info.mid in self._early_acks:  # the PUBACK beat us to the bookkeeping
                    self._early_acks.discard(info.mid)
                    self._acked.append(seq)
                else:
                    self._inflight[info.mid] = seq
        return len(rows)

    def _mark_delivered(self, seqs: list[int]) -> None:
        now_ns = time.time_ns()  # real delivery time, for status and pruning
        with self.store.transaction() as conn:
            conn.executemany(
                "UPDATE outbox SET delivered_wall_ns = ? WHERE seq = ? AND delivered_wall_ns IS NULL",
                [(now_ns, s) for s in seqs],
            )
        self.delivered += len(seqs)

    # -- helpers ---------------------------------------------------------------------------
    def _properties(self, msg_id: str, late: bool = False) -> Properties | None:
        if not self.v5:
            return None
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = "application/json"
        props.UserProperty = [("msg_id", msg_id), ("late", "true" if late else "false")]
        return props

    def _connections(self) -> int:
        return int(self.store.get_state("mqtt_connections", "0") or 0)

    def _status(self, state: str, connection: int) -> str:
        return json.dumps(
            {
                "state": state,
                "connection": connection,
                "coop": self.config.coop,
                "store": self.config.store,
                "agent": f"shopkeeper {__version__}",
            },
            sort_keys=True,
        )

    def _set_will(self, connection: int) -> None:
        self.client.will_set(self.config.status_topic, self._status("offline", connection), qos=1, retain=True)

    def pending(self) -> int:
        row = self.store.conn().execute("SELECT count(*) FROM outbox WHERE delivered_wall_ns IS NULL").fetchone()
        return int(row[0])
