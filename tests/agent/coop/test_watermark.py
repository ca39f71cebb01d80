"""The coop-held watermark on the agent: read back before the first release, windows at or before it never drawn."""

from __future__ import annotations

import json
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.clock import NS_PER_S
from agent.config import AgentConfig
from agent.contract import iso_utc, watermark_topic
from agent.coop.watermark import WATERMARK_KEY, WatermarkGate
from agent.demo.local_broker import LocalBroker
from agent.ops.status import ledger_rows, verify_ledger
from agent.pipeline.publish import Publisher
from agent.pipeline.release import WindowReleaser
from agent.privacy.reconcile import LOST_COUNTER
from agent.store import Store
from tests.conftest import T0_NS, ManualClock, make_config

HOUR = 3600 * NS_PER_S


def watermark(config: AgentConfig, through_ns: int, store: str | None = None) -> bytes:
    doc = {
        "schema": "shopkeeper.hub-watermark.v1",
        "coop": config.coop,
        "store": store or config.store,
        "released_through": iso_utc(through_ns),
        "scope": "every stream of the store",
        "updated_at": iso_utc(through_ns),
    }
    return json.dumps(doc).encode()


def released_windows(store: Store) -> list[int]:
    return [int(r[0]) for r in store.conn().execute("SELECT DISTINCT window_start_ns FROM release_ledger ORDER BY 1")]


def test_a_window_at_or_before_the_watermark_is_never_drawn_on_a_fresh_store(
    config: AgentConfig, clock: ManualClock
) -> None:
    """A fresh disk (no database, no journal) whose clock is behind: the watermark alone stops the redraw."""
    store = Store(config.db_path)
    gate = WatermarkGate(store, config.coop, config.store, wait_s=60)
    releaser = WindowReleaser(config, store, clock, watermark=gate)
    clock.advance(5 * 3600 + 121)
    assert releaser.tick() == 0, "nothing is released before the watermark is read or the wait is over"
    assert gate.record(watermark(config, T0_NS + 3 * HOUR))
    assert releaser.tick() == 2  # 03:00 and 04:00; 00:00 to 02:00 are at or before the watermark
    assert released_windows(store) == [T0_NS + 3 * HOUR, T0_NS + 4 * HOUR]
    assert store.counters()[LOST_COUNTER] == 3
    lost = [r for r in ledger_rows(config) if r.get("state") == "lost"]
    assert [(r["window_start"], r["windows"]) for r in lost] == [("2025-11-16T00:00:00Z", 3)]
    assert verify_ledger(config) == []  # every window up to the watermark is released or recorded as lost
    store.close()


def test_verify_fails_when_the_database_is_behind_the_watermark(config: AgentConfig, clock: ManualClock) -> None:
    store = Store(config.db_path)
    releaser = WindowReleaser(config, store, clock)
    clock.advance(2 * 3600 + 121)
    assert releaser.tick() == 2
    assert verify_ledger(config) == []
    with store.transaction() as conn:  # the coop holds a window this database does not (and has not reconciled)
        Store.set_state(conn, WATERMARK_KEY, str(T0_NS + 4 * HOUR))
    problems = verify_ledger(config)
    assert len(problems) == 1 and "watermark" in problems[0] and "2025-11-16T04:00:00Z" in problems[0]
    store.close()


def test_a_watermark_behind_the_database_changes_nothing(config: AgentConfig, clock: ManualClock) -> None:
    store = Store(config.db_path)
    gate = WatermarkGate(store, config.coop, config.store, wait_s=60)
    releaser = WindowReleaser(config, store, clock, watermark=gate)
    gate.answered()  # the broker holds none: a fresh store
    clock.advance(3 * 3600 + 121)
    assert releaser.tick() == 3
    gate.record(watermark(config, T0_NS + HOUR))  # the hub has stored only the first window so far
    clock.advance(3600)
    assert releaser.tick() == 1
    assert released_windows(store) == [T0_NS + i * HOUR for i in range(4)]
    assert LOST_COUNTER not in store.counters() and verify_ledger(config) == []
    store.close()


def test_a_watermark_a_week_ahead_of_the_clock_is_refused_not_skipped_to(
    config: AgentConfig, clock: ManualClock
) -> None:
    store = Store(config.db_path)
    gate = WatermarkGate(store, config.coop, config.store, wait_s=60)
    releaser = WindowReleaser(config, store, clock, watermark=gate)
    gate.record(watermark(config, T0_NS + 8 * 24 * HOUR))
    clock.advance(2 * 3600 + 121)
    assert releaser.tick() == 2 and released_windows(store) == [T0_NS, T0_NS + HOUR]
    assert store.counters()["watermark_ahead_ignored"] == 1 and LOST_COUNTER not in store.counters()
    store.close()


def test_another_stores_or_a_malformed_watermark_is_refused_and_counted(config: AgentConfig) -> None:
    store = Store(config.db_path)
    gate = WatermarkGate(store, config.coop, config.store, wait_s=60)
    assert not gate.record(watermark(config, T0_NS + HOUR, store="store-0001"))
    assert not gate.record(b"{not json")
    assert store.get_state(WATERMARK_KEY) is None and not gate.ready()
    assert store.counters()["watermark_messages_ignored"] == 2
    assert gate.describe()["state"] == "waiting"
    store.close()


def test_the_wait_is_bounded_and_zero_turns_it_off(config: AgentConfig) -> None:
    store = Store(config.db_path)
    gate = WatermarkGate(store, config.coop, config.store, wait_s=0.2)
    assert not gate.ready()
    time.sleep(0.3)
    assert gate.ready() and gate.describe()["state"] == "unreadable"
    gate.answered()  # the broker answers later: there is none, and /health stops saying it was not read
    assert gate.describe()["state"] == "none"
    off = WatermarkGate(store, config.coop, config.store, wait_s=0)
    assert off.ready() and off.describe()["state"] == "off"
    store.close()


def retain(port: int, topic: str, payload: bytes) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-hub")
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.publish(topic, payload, qos=1, retain=True).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def wait_ready(gate: WatermarkGate, timeout: float) -> float:
    started = time.monotonic()
    while not gate.ready():
        assert time.monotonic() - started < timeout, "the gate did not open"
        time.sleep(0.02)
    return time.monotonic() - started


@pytest.mark.parametrize("held", [True, False])
def test_the_publisher_reads_the_retained_watermark_or_learns_there_is_none(
    tmp_path: Path, broker: LocalBroker, held: bool
) -> None:
    config = make_config(tmp_path, broker.port)
    if held:
        retain(broker.port, watermark_topic(config.coop, config.store), watermark(config, T0_NS + 5 * HOUR))
    store = Store(config.db_path)
    gate = WatermarkGate(store, config.coop, config.store, wait_s=120)
    publisher = Publisher(config, store, watermark=gate)
    publisher.start()
    try:
        waited = wait_ready(gate, 30)
    finally:
        publisher.stop()
    # Either way it is the broker's answer, not the 120 s wait, that opens the gate.
    assert waited < 30
    if held:
        assert store.get_state(WATERMARK_KEY) == str(T0_NS + 5 * HOUR) and gate.describe()["state"] == "read"
    else:
        assert store.get_state(WATERMARK_KEY) is None and gate.describe()["state"] == "none"
    store.close()
