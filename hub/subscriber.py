"""The hub's MQTT side: a persistent QoS 1 session, batched writes, acknowledgements after commit.

paho hands each message to `_on_message`, which only queues it. The writer thread takes what is
queued (up to `batch_max`), validates, writes it in one transaction and only then sends the PUBACKs
(manual acknowledgement). A hub killed between receipt and commit has acknowledged nothing, so the
broker redelivers to its persistent session (clean_start false, stable client id, session expiry),
and the (store, msg_id) primary key absorbs what had been committed but not yet acknowledged.

Memory is bounded whatever the coop sends. Each queued message holds at most MAX_PAYLOAD_BYTES + 1
of its payload (a longer one is refused as too large anyway, with its size on the wire), and the queue
holds at most QUEUE_MAX messages. When it is full, a QoS 1 or 2 message waits in paho's network thread
until the writer makes room: TCP back-pressure, and the broker keeps the rest in the hub's persistent
session (bounded by coop.conf's max_queued_messages and max_queued_bytes); ReceiveMaximum already
limits how many unacknowledged QoS 1 messages the broker sends. A QoS 0 message (no agent sends one)
is dropped and counted (`dropped` in /api/status) rather than stall the connection.

The writer never dies on a message: parse_message never raises, and a failed batch is retried. If it
dies anyway, `on_fatal` ends the process (so systemd restarts it) instead of a hub that limps on.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.contract import HUB_SEGMENT, MAX_PAYLOAD_BYTES, SECAGG
from agent.contract.licensing import answer_store
from agent.contract.secrets import resolve_secret
from hub import licensing
from hub.config import HubConfig
from hub.contract import Parsed, Rejected, Summary, parse_message
from hub.db import Connection, Database
from hub.storage import store_batch

log = logging.getLogger(__name__)

Incoming = tuple[str, bytes, int, int, int]  # topic, payload (cut at MAX_PAYLOAD_BYTES + 1), size, mid, qos
LOG_EVERY_S = 10.0
QUEUE_MAX = 1000  # messages received and not yet stored: at most about 16 MB of payload


class HubSubscriber:
    """Receives the coop's messages and stores each exactly once in effect."""

    def __init__(
        self,
        config: HubConfig,
        database: Database,
        on_stored: Callable[[list[Summary]], None] = lambda _s: None,
        on_fatal: Callable[[BaseException], None] = lambda _e: None,
        queue_max: int = QUEUE_MAX,
    ) -> None:
        self.config, self.database, self.on_stored, self.on_fatal = config, database, on_stored, on_fatal
        settings = config.mqtt
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=settings.client_id, protocol=mqtt.MQTTv5)
        self.client.enable_logger(logging.getLogger("paho.hub"))
        self.client.manual_ack_set(True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        if settings.username:
            self.client.username_pw_set(settings.username, resolve_secret(settings.password) or None)
        if settings.tls_ca_file:
            self.client.tls_set(
                ca_certs=settings.tls_ca_file,
                certfile=settings.tls_cert_file or None,
                keyfile=settings.tls_key_file or None,
            )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self._queue: queue.Queue[Incoming | None] = queue.Queue(maxsize=queue_max)
        self._dropped = 0  # QoS 0 messages refused by a full queue, not yet counted in the database
        self._dropped_lock = threading.Lock()
        self._refused: dict[tuple[str, str], int] = {}  # (store, reason) -> refused since the last log line
        self._logged_at = -LOG_EVERY_S
        self._stop = threading.Event()
        self.subscribed = threading.Event()
        # Secure-aggregation messages of shops go to the round coordinator (hub/secagg.py), not the summary store.
        self.round_handler: Callable[[str, bytes], None] | None = None
        self.connected = threading.Event()
        self._writer = threading.Thread(target=self._guarded_write_loop, name="hub-writer", daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.config.mqtt.session_expiry_s
        props.ReceiveMaximum = self.config.mqtt.receive_maximum
        # The broker drops, for this session, any packet bigger than this instead of sending it.
        props.MaximumPacketSize = 2 * 131072
        self.client.connect_async(
            self.config.mqtt.host,
            self.config.mqtt.port,
            keepalive=self.config.mqtt.keepalive_s,
            clean_start=False,
            properties=props,
        )
        self._writer.start()
        self.client.loop_start()

    def stop(self, timeout: float = 10.0) -> None:
        """Disconnect first (nothing new arrives), then let the writer finish what it holds."""
        self.client.disconnect()
        self.client.loop_stop()
        self._stop.set()
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            log.warning("the hub's receive queue stayed full while stopping")
        self._writer.join(timeout)

    @property
    def writer_alive(self) -> bool:
        return self._writer.is_alive()

    def publish(self, topic: str, payload: str, retain: bool = True) -> mqtt.MQTTMessageInfo:
        """Publish one of the hub's own messages (benchmarks, alerts) at QoS 1."""
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = "application/json"
        return self.client.publish(topic, payload, qos=1, retain=retain, properties=props)

    # -- paho callbacks (network thread) -------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, reason_code: Any, _p: Any) -> None:
        if reason_code.is_failure:
            log.warning("broker refused the hub's connection: %s", reason_code)
            return
        log.info(
            "hub %s connected to %s:%s (session present: %s); subscribing to %s",
            self.config.worker_id,
            self.config.mqtt.host,
            self.config.mqtt.port,
            getattr(flags, "session_present", "?"),
            self.config.topic_filter,
        )
        self.connected.set()
        client.subscribe(self.config.topic_filter, qos=1)
        if self.round_handler is not None and self.config.worker_group:
            # Every message of a round must reach the one worker that runs it, not a share of the group.
            client.subscribe(f"coop/v1/{self.config.coop}/+/{SECAGG}/#", qos=1)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, reason_codes: Any, _p: Any) -> None:
        if any(rc.is_failure for rc in reason_codes):
            log.error("broker refused the subscription %s: %s", self.config.topic_filter, reason_codes)
            return
        self.subscribed.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason_code: Any, _p: Any) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            log.warning("hub disconnected from broker (%s); reconnecting", reason_code)

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:  # MQTT requires UTF-8 topics; a broker that let one through still gets a reason
            topic = message._topic.decode("utf-8", errors="replace")
        payload = message.payload
        parts = topic.split("/", 6)
        is_round = len(parts) > 5 and parts[4] == SECAGG and parts[3] != HUB_SEGMENT
        if is_round and (self.round_handler is not None or self.config.worker_group):
            # A round message lives in the coordinator's memory only (a lost one is a drop the round survives),
            # so it is acknowledged here; another worker of the group leaves rounds to the one that runs them.
            # A lone hub without [secagg] lets it through to the checks below, which refuse and count it.
            if self.round_handler is not None:
                self.round_handler(topic, bytes(payload))
            if message.qos > 0:
                self.client.ack(message.mid, message.qos)
            return
        item = (topic, bytes(payload[: MAX_PAYLOAD_BYTES + 1]), len(payload), message.mid, message.qos)
        if message.qos == 0:
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                with self._dropped_lock:
                    self._dropped += 1
            return
        while not self._stop.is_set():  # bounded: the writer drains the queue, or stop() ends the wait
            try:
                self._queue.put(item, timeout=1.0)
                return
            except queue.Full:
                continue

    # -- writer thread ---------------------------------------------------------------------------
    def _take_batch(self) -> list[Incoming] | None:
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < self.config.batch_max:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)
                break
            batch.append(item)
        return batch

    def _guarded_write_loop(self) -> None:
        try:
            self._write_loop()
        except BaseException as exc:
            log.critical("the hub's writer thread died (%s); stopping the hub", exc, exc_info=True)
            self.on_fatal(exc)

    def _take_dropped(self) -> int:
        with self._dropped_lock:
            dropped, self._dropped = self._dropped, 0
        return dropped

    def _write_loop(self) -> None:
        conn: Connection | None = None
        while True:
            batch = self._take_batch()
            if batch is None:
                break
            answers = [(t, p, n) for t, p, n, _m, _q in batch if answer_store(self.config.coop, t) is not None]
            parsed = [
                parse_message(self.config.coop, topic, payload, size)
                for topic, payload, size, _m, _q in batch
                if answer_store(self.config.coop, topic) is None
            ]
            dropped = self._take_dropped()
            delay = 0.2
            while True:
                try:
                    conn = conn or self.database.connect()
                    # Licensing answers (hub/licensing.py) are stored once per (query, shop); a refused one is
                    # counted with the other refusals, under its store.
                    refused = self._store_answers(conn, answers)
                    result = store_batch(conn, self.config.worker_id, parsed + refused, dropped=dropped)
                    break
                except Exception as exc:  # database down, deadlock victim, ...: retry, never ack unstored
                    log.warning("storing a batch of %d failed (%s); retrying in %.1f s", len(batch), exc, delay)
                    if conn is not None:
                        try:
                            conn.close()
                        except Exception:
                            log.debug("closing a broken connection failed", exc_info=True)
                    conn = None
                    if self._stop.wait(delay):
                        return  # unacknowledged: the broker redelivers to this session next time
                    delay = min(delay * 2, 10.0)
            for _topic, _payload, _size, mid, qos in batch:
                if qos > 0:
                    self.client.ack(mid, qos)
            if result.rejected:
                self._log_refused(parsed)
            if result.dropped:
                log.warning("dropped %d QoS 0 message(s): the receive queue was full", result.dropped)
            summaries = [p for p in parsed if isinstance(p, Summary)]
            if summaries:
                try:
                    self.on_stored(summaries)
                except Exception:
                    log.exception("post-store hook failed")
        if conn is not None:
            conn.close()

    def _store_answers(self, conn: Connection, answers: list[tuple[str, bytes, int]]) -> list[Parsed]:
        refused: list[Parsed] = []
        for topic, payload, size in answers:
            with conn.transaction():
                reason = licensing.record_answer(conn, self.config.coop, topic, payload)
            if reason is not None:
                store = answer_store(self.config.coop, topic) or ""
                refused.append(Rejected(topic, "licensing answer refused", payload, store, reason, size))
        return refused

    def _log_refused(self, parsed: list[Any]) -> None:
        """At most one line per LOG_EVERY_S (a flood must not flood the journal), naming stores and reasons."""
        for item in parsed:
            if isinstance(item, Rejected):
                key = (item.store, item.reason)
                self._refused[key] = self._refused.get(key, 0) + 1
        now = time.monotonic()
        if now - self._logged_at < LOG_EVERY_S:
            return
        top = sorted(self._refused.items(), key=lambda kv: -kv[1])[:5]
        log.warning(
            "refused %d message(s) since the last report: %s (counted in table rejected_summary)",
            sum(self._refused.values()),
            "; ".join(f"{store or '?'}: {n} x {reason}" for (store, reason), n in top),
        )
        self._refused, self._logged_at = {}, now
