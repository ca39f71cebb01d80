"""A real MQTT subscriber for tests: records every message on `#` (or a given filter)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


class Subscriber:
    def __init__(
        self, port: int, topic: str = "#", client_id: str = "test-subscriber", persistent: bool = False
    ) -> None:
        self.raw: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        # A persistent session keeps the subscription (and queues QoS 1 messages) across a broker restart.
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not persistent)
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("subscriber did not get SUBACK within 10 s")

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.raw.append((message.topic, bytes(message.payload), bool(message.retain)))

    def messages(self) -> list[tuple[str, bytes, bool]]:
        with self._lock:
            return list(self.raw)

    def summaries(self) -> list[dict[str, Any]]:
        """Decoded payloads that carry released values (not status messages)."""
        out = []
        for topic, payload, _retain in self.messages():
            if topic.endswith("/status"):
                continue
            out.append(json.loads(payload))
        return out

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
