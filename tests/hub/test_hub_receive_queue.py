"""The hub's receive queue is bounded: payloads are cut on receipt, a full queue drops (and counts) QoS 0 and
holds QoS 1 back in paho's thread until the writer makes room; a dead writer ends the hub."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from paho.mqtt.client import MQTTMessage

from agent.contract import MAX_PAYLOAD_BYTES
from hub.config import load_hub_config
from hub.db import Database
from hub.subscriber import HubSubscriber
from tests.hub.conftest import write_hub_config


def _message(qos: int, payload: bytes, mid: int = 1) -> MQTTMessage:
    message = MQTTMessage(mid, b"coop/v1/riverside/s1/t1/footfall/hourly")
    message.payload, message.qos = payload, qos
    return message


def _subscriber(tmp_path: Path, queue_max: int, **kwargs: Any) -> HubSubscriber:
    config = load_hub_config(write_hub_config(tmp_path / "hub.toml", 1883, str(tmp_path / "hub.db")))
    return HubSubscriber(config, Database(config.database), queue_max=queue_max, **kwargs)


def test_a_payload_is_cut_on_receipt_and_keeps_its_size(tmp_path: Path) -> None:
    sub = _subscriber(tmp_path, 4)
    sub._on_message(None, None, _message(1, b"x" * 100_000))  # type: ignore[arg-type]
    _topic, payload, size, _mid, qos = sub._queue.get_nowait()  # type: ignore[misc]
    assert (len(payload), size, qos) == (MAX_PAYLOAD_BYTES + 1, 100_000, 1)


def test_a_full_queue_drops_and_counts_qos0_and_holds_qos1_until_there_is_room(tmp_path: Path) -> None:
    sub = _subscriber(tmp_path, 2)
    for mid in (1, 2):
        sub._on_message(None, None, _message(1, b"{}", mid))  # type: ignore[arg-type]
    sub._on_message(None, None, _message(0, b"{}", 3))  # type: ignore[arg-type]
    assert sub._take_dropped() == 1 and sub._queue.qsize() == 2
    waiting = threading.Thread(target=sub._on_message, args=(None, None, _message(1, b"{}", 4)))
    waiting.start()
    waiting.join(0.5)
    assert waiting.is_alive()  # held back: nothing unacknowledged is ever dropped
    first = sub._queue.get_nowait()
    waiting.join(5)
    assert not waiting.is_alive() and first is not None and first[3] == 1
    assert [item[3] for item in (sub._queue.get_nowait(), sub._queue.get_nowait())] == [2, 4]  # type: ignore[index]


def test_a_dead_writer_calls_on_fatal(tmp_path: Path) -> None:
    died: list[BaseException] = []
    sub = _subscriber(tmp_path, 4, on_fatal=died.append)

    def boom() -> None:
        raise RuntimeError("simulated bug")

    sub._write_loop = boom  # type: ignore[method-assign]
    sub._writer.start()
    sub._writer.join(5)
    assert [str(e) for e in died] == ["simulated bug"]
