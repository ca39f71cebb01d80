"""Publish the outbox to the coop's broker: oldest first, QoS 1, delivered only on a successful PUBACK.

The publisher reads only the outbox, which only the privacy release writes (DESIGN.md promise 1).
At most `max_inflight` messages are outstanding; paho retransmits those after a reconnect, and on a
restart every undelivered row is sent again under its stable message id, which the hub de-duplicates.
A PUBACK whose reason code is a failure (MQTT v5: 0x87 Not authorized from an ACL, 0x97 Quota
exceeded, ...) is a refusal, never a delivery (promise 8): the row stays pending and is retried with
backoff, and its topic waits behind it (agent/store/outbox.py says why the order is per topic).

Sending and recording are two threads: the sender refills paho's in-flight window as soon as PUBACKs
free it, while the recorder writes every PUBACK that arrived since its last commit in ONE transaction
(one fsync per burst). A row whose PUBACK is not yet committed stays pending in SQLite (so a crash
re-sends it, which the hub de-duplicates) but is never handed to paho twice.
"""

from __future__ import annotations

import collections
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agent import __version__
from agent.clock import Clock
from agent.config import AgentConfig
from agent.contract import HUB_SEGMENT, SECAGG, watermark_topic
from agent.contract.licensing import query_topic
from agent.contract.secrets import resolve_secret
from agent.coop import district
from agent.coop.watermark import WatermarkGate
from agent.licensing import inbox
from agent.pipeline import status_log
from agent.pipeline.mqtt_properties import SummaryProperties
from agent.store import Store, outbox
from agent.threads import start_guarded

log = logging.getLogger(__name__)

# Rows handed to paho whose outcome is not committed yet: the sender waits above this many (the
# recorder is behind, e.g. a slow disk), which also bounds next_batch's exclusion list.
MAX_OUTSTANDING = 2000
# Rows handed to paho at once, per slot of its in-flight window: refilling the window from this thread
# after every PUBACK costs a thread hand-over per message, most of the drain's time. A refused topic may
# have this many newer rows already with paho (it had max_inflight before); they are refused or accepted
# by the broker on their own, and nothing newer is handed over until the refusal is recorded.
HANDOFF_PER_INFLIGHT = 12
# How long the recorder waits for the rest of a PUBACK burst before it commits what it has.
RECORD_GATHER_S = 0.005
# Rows read ahead from the outbox in one query; the sender hands them to paho as PUBACKs free the
# window, instead of one query per message. Bounded, so memory does not grow with a backlog.
PREFETCH_ROWS = 256


class Publisher:
    """Owns the MQTT connection and drains the outbox in sequence order."""

    def __init__(
        self,
        config: AgentConfig,
        store: Store,
        clock: Clock | None = None,
        retry_base_s: float = outbox.RETRY_BASE_S,
        retry_cap_s: float = outbox.RETRY_CAP_S,
        watermark: WatermarkGate | None = None,
    ) -> None:
        self.config, self.store = config, store
        self.watermark = watermark
        self.watermark_topic = watermark_topic(config.coop, config.store)
        self._barrier_mids: set[int] = set()  # SUBACKs that follow the watermark's retained message
        # Not used for timing: backoff and delivery times are real time, and `late` comes from the payload.
        self.clock = clock
        self.retry_base_s, self.retry_cap_s = retry_base_s, retry_cap_s
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
            # An "env:VARIABLE" password is read here, when the client is made (docs/operations.md, Secrets).
            self.client.username_pw_set(self.settings.username, resolve_secret(self.settings.password) or None)
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
        self.client.on_subscribe = self._on_subscribe
        # One lock, two conditions, so that a PUBACK wakes only the thread that has something to do: the
        # sender once half of paho's hand-over room is free, the recorder for a burst's first PUBACK and
        # once a burst is complete (max_inflight). Waking both for every PUBACK was a GIL hand-over each.
        lock = threading.RLock()
        self._cond = threading.Condition(lock)  # the sender's: room, new rows, a connection, a commit, stop
        self._acks = threading.Condition(lock)  # the recorder's: PUBACKs to record, stop
        self._connected = False
        self._inflight: dict[int, int] = {}  # paho mid -> outbox seq, until its PUBACK
        self.handoff = HANDOFF_PER_INFLIGHT * self.settings.max_inflight
        self.refill = max(1, self.handoff // 2)  # free room that wakes a waiting sender
        # seq -> topic of every row handed to paho whose outcome is not yet written to SQLite: such a
        # row is still pending there, but must not be sent a second time.
        self._outstanding: dict[int, str] = {}
        self._outcomes: list[tuple[int, ReasonCode]] = []  # PUBACKs to record, in arrival order
        self._early_acks: dict[int, ReasonCode] = {}  # PUBACKs that beat publish() to the bookkeeping
        self._status_mids: set[int] = set()  # birth messages: not outbox rows
        # Secure-aggregation messages (agent/coop/round_participant.py): not outbox rows either; mid -> topic
        # until the PUBACK, so their acks are never taken for an outbox row's.
        self._round_mids: dict[int, str] = {}
        self.round_handler: Callable[[str, bytes], None] | None = None
        self.round_filters: list[str] = []

        self._ahead: collections.deque[outbox.OutboxRow] = collections.deque()  # read, not yet handed to paho
        # Refusals (failed PUBACKs) not yet committed: while any is, nothing is sent, and the rows read ahead
        # are dropped, so no newer row of a refused topic goes out (as when one thread did both).
        self._refusals_unrecorded = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._recorder: threading.Thread | None = None
        self.delivered = 0
        # topic -> reason the broker refuses it, as last logged: one log line per cause, not per message.
        held = outbox.rejections(store.conn())
        self._refused = {r.topic: r.reason for r in held}
        for r in held:
            log.warning(
                "broker refused %s before this start (%s, reason code 0x%02x): %d summaries held back, retrying",
                r.topic,
                r.reason,
                r.code,
                r.held_back,
            )
        self._set_will(self._connections() + 1)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self.client.connect_async(self.settings.host, self.settings.port, keepalive=self.settings.keepalive_s)
        self.client.loop_start()
        self._thread = start_guarded("publisher", self._run)
        self._recorder = start_guarded("publisher-acks", self._record_loop)

    def stop(self, timeout: float = 5.0) -> None:
        """Say goodbye (retained offline status), disconnect and stop the threads."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            self._acks.notify_all()
        for thread in (self._thread, self._recorder):
            if thread is not None:
                thread.join(timeout)
        if self._connected:
            goodbye = self._status("offline", self._connections())
            info = self.client.publish(self.config.status_topic, goodbye, qos=1, retain=True)
            info.wait_for_publish(timeout)
            with self.store.transaction() as conn:
                status_log.record(conn, self.config.status_topic, goodbye, time.time_ns(), "agent")
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
            self._log_status(conn, number)
        birth = client.publish(self.config.status_topic, self._status("online", number), qos=1, retain=True)
        with self._cond:  # on the network thread: its PUBACK cannot be handled before this
            self._status_mids.add(birth.mid)
        # The watermark first (QoS 0, so its retained copy is not held behind the broker's in-flight
        # window): the SUBACKs of the next subscriptions then come after it (agent/coop/watermark.py).
        client.subscribe(self.watermark_topic, qos=0)
        for topic in district.subscriptions(self.config):
            _rc, mid = client.subscribe(topic, qos=1)
            if mid is not None:
                with self._cond:
                    self._barrier_mids.add(mid)
        for topic in self.round_filters:
            client.subscribe(topic, qos=1)
        if self.config.licensing is not None:  # the coop's signed queries (agent/licensing)
            client.subscribe(query_topic(self.config.coop), qos=1)
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

    def _on_publish(self, _client: mqtt.Client, _userdata: Any, mid: int, reason_code: Any, _properties: Any) -> None:
        with self._cond:
            round_topic = self._round_mids.pop(mid, None)
            if round_topic is not None:
                if reason_code.is_failure:
                    log.warning("broker refused the round message on %s: %s", round_topic[:200], reason_code)
                return
            if mid in self._status_mids:
                self._status_mids.discard(mid)
                if reason_code.is_failure:
                    log.warning("broker refused the status message on %s: %s", self.config.status_topic, reason_code)
                return
            seq = self._inflight.pop(mid, None)
            if seq is None:
                self._early_acks[mid] = reason_code
            else:
                self._outcome(seq, reason_code)
            if len(self._inflight) <= self.handoff - self.refill:
                self._cond.notify_all()

    def _on_subscribe(self, _client: mqtt.Client, _userdata: Any, mid: int, _codes: Any, _properties: Any) -> None:
        with self._cond:
            barrier = mid in self._barrier_mids
            self._barrier_mids.discard(mid)
        if barrier and self.watermark is not None:
            self.watermark.answered()

    def _outcome(self, seq: int, reason_code: ReasonCode) -> None:
        """Queue a PUBACK for the recorder (caller holds self._cond); a refusal stops the sender until recorded."""
        self._outcomes.append((seq, reason_code))
        if reason_code.is_failure:
            self._refusals_unrecorded += 1
        if len(self._outcomes) == 1 or len(self._outcomes) >= self.settings.max_inflight:
            self._acks.notify_all()  # a burst begins (the recorder waits for it) or is complete

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == self.watermark_topic:
            if self.watermark is not None:
                self.watermark.record(bytes(message.payload))
            return
        if self.round_handler is not None and f"/{HUB_SEGMENT}/{SECAGG}/" in message.topic:
            self.round_handler(message.topic, bytes(message.payload))
            return
        if self.config.licensing is not None and message.topic == query_topic(self.config.coop):
            # Verified and stored only; the release thread answers it (agent/licensing/desk.py).
            inbox.receive(
                self.store,
                self.config.coop,
                self.config.licensing.coop_public_key,
                bytes(message.payload),
                self.clock.wall_ns() if self.clock is not None else time.time_ns(),
            )
            return
        district.record(self.store, message.topic, bytes(message.payload))

    def send_round_message(self, topic: str, payload: bytes) -> None:
        """Publish one secure-aggregation message at QoS 1 (paho keeps it until the broker's PUBACK).

        Not an outbox row: it carries keys, sealed shares, signatures or a masked vector (uniform mod 2**64
        on its own), each built by the round's privacy code after its charge is committed."""
        info = self.client.publish(topic, payload, qos=1)
        with self._cond:
            early = self._early_acks.pop(info.mid, None)  # its PUBACK beat this bookkeeping
            if early is None:
                self._round_mids[info.mid] = topic
            elif early.is_failure:
                log.warning("broker refused the round message on %s: %s", topic[:200], early)

    # -- the drain loop (publisher thread) -------------------------------------------------
    def _run(self) -> None:
        """Sender: keep paho's in-flight window full; recording the PUBACKs is the recorder's."""
        while True:
            with self._cond:
                if self._stopping:
                    return
                # paho holds up to `handoff` rows: max_inflight in flight, the rest queued in paho, which sends
                # each as a PUBACK frees its slot on its own network thread (no hand-over per message).
                room = self.handoff - len(self._inflight) if self._connected else 0
                room = min(room, MAX_OUTSTANDING - len(self._outstanding))
            sent = self._send_next(room) if room > 0 else 0
            with self._cond:
                # Woken by PUBACKs (half the room free), a commit (fewer outstanding), new rows or a
                # reconnect; the timeout also notices a refused row whose backoff has passed. After a
                # hand-over it waits for half the room, instead of refilling one row per PUBACK.
                low = sent > 0 and self.handoff - len(self._inflight) < self.refill
                if not self._stopping and (sent == 0 or not self._connected or low):
                    self._cond.wait(timeout=0.5)

    def _record_loop(self) -> None:
        """Recorder: every PUBACK that arrived since the last commit, in one transaction."""
        while True:
            with self._cond:
                while not self._outcomes and not self._stopping:
                    self._acks.wait(timeout=0.5)
                # A burst is still arriving: gather it for a moment, so one commit (and fsync) covers it.
                deadline = time.monotonic() + RECORD_GATHER_S
                while len(self._outcomes) < self.settings.max_inflight and not self._stopping:
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._acks.wait(timeout=left):
                        break
                outcomes, self._outcomes = self._outcomes, []
                stopping = self._stopping
            if outcomes:
                self._record(outcomes)
            if stopping:
                return  # what arrived was recorded; anything later is re-sent and de-duplicated

    def _send_next(self, room: int) -> int:
        with self._cond:
            if self._refusals_unrecorded:  # a topic was just refused: its newer rows must wait (re-read)
                self._ahead.clear()
                return 0
            busy = list(self._outstanding) if not self._ahead else []
        if not self._ahead:
            self._ahead.extend(
                outbox.next_batch(self.store.conn(), max(room, PREFETCH_ROWS), time.time_ns(), busy, self.retry_cap_s)
            )
        sent = 0
        while sent < room and self._ahead:
            row = self._ahead.popleft()
            # Not under self._cond: paho calls on_publish while holding its own message lock, so
            # holding ours across publish() would invert the lock order and deadlock.
            info = self.client.publish(row.topic, row.payload, qos=1, properties=self._properties(row.msg_id, row.late))
            with self._cond:
                self._outstanding[row.seq] = row.topic
                early = self._early_acks.pop(info.mid, None)
                if early is not None:
                    self._outcome(row.seq, early)
                else:
                    self._inflight[info.mid] = row.seq
                if self._refusals_unrecorded:  # newer rows of a refused topic must wait: read again later
                    self._ahead.clear()
            sent += 1
        return sent

    def _record(self, outcomes: list[tuple[int, ReasonCode]]) -> None:
        """Write a burst of PUBACKs in one transaction: successes delivered, failures refused."""
        now_ns = time.time_ns()  # real time, for status, backoff and pruning
        accepted = [seq for seq, code in outcomes if not code.is_failure]
        refused = [(seq, code) for seq, code in outcomes if code.is_failure]
        with self.store.transaction() as conn:
            outbox.accept(conn, accepted, now_ns)
            for seq, code in refused:
                outbox.reject(conn, seq, code.value, str(code), now_ns, self.retry_base_s, self.retry_cap_s)
        with self._cond:
            # The sender waits on this commit only when the outstanding bound held its room below a full
            # hand-over, or a refusal stopped it; otherwise PUBACKs wake it, and waking it here too would
            # cost a hand-over per commit.
            held = len(self._outstanding) > MAX_OUTSTANDING - self.handoff or self._refusals_unrecorded > 0
            topics = {seq: self._outstanding.pop(seq, "") for seq, _code in outcomes}
            self._refusals_unrecorded -= len(refused)
            if held:
                self._cond.notify_all()
        self.delivered += len(accepted)
        self._log_causes(topics, refused)

    def _log_causes(self, topics: dict[int, str], refused: list[tuple[int, ReasonCode]]) -> None:
        """One line when the broker starts refusing a topic or changes its reason, one when it stops."""
        refused_now = {}
        for seq, code in refused:
            refused_now[topics[seq]] = code
        for topic, code in refused_now.items():
            if self._refused.get(topic) != str(code):
                self._refused[topic] = str(code)
                log.warning(
                    "broker refuses %s: %s (PUBACK reason code 0x%02x); its summaries stay pending and are "
                    "retried with backoff (at most %g s apart). Check the broker's ACL for this store.",
                    topic,
                    code,
                    code.value,
                    self.retry_cap_s,
                )
        # At warning level too, so that `journalctl -p warning` shows each refusal with its end.
        for topic in {t for t in topics.values() if t in self._refused and t not in refused_now}:
            log.warning("broker accepts %s again (was: %s); sending its held summaries", topic, self._refused[topic])
            del self._refused[topic]

    # -- helpers ---------------------------------------------------------------------------
    def _properties(self, msg_id: str, late: bool) -> Properties | None:
        if not self.v5:
            return None
        # Content type, msg_id and `late` (copied from the stored payload, agent/store/outbox.py `is_late`),
        # packed once per message by hand (mqtt_properties.py says why).
        return SummaryProperties(msg_id, late)

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

    def _log_status(self, conn: sqlite3.Connection, number: int) -> None:
        """Record the birth message for the owner's page, after the last will if the previous session left
        without its goodbye (the broker then sent the will for it; when exactly is not known here)."""
        previous = status_log.sent(conn)
        if previous and json.loads(previous[-1]["payload"]).get("state") == "online":
            status_log.record(conn, self.config.status_topic, self._status("offline", number - 1), 0, "broker")
        status_log.record(conn, self.config.status_topic, self._status("online", number), time.time_ns(), "agent")

    def _set_will(self, connection: int) -> None:
        self.client.will_set(self.config.status_topic, self._status("offline", connection), qos=1, retain=True)

    def pending(self) -> int:
        return outbox.pending(self.store.conn())[0]
