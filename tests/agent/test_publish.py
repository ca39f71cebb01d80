"""Publishing to a real Mosquitto: oldest first, QoS 1, delivered only on PUBACK, birth and will."""

from __future__ import annotations

import json
from pathlib import Path

from agent.config import AgentConfig
from agent.demo.local_broker import LocalBroker
from agent.pipeline.publish import Publisher
from agent.pipeline.release import WindowReleaser
from agent.store import Store
from tests.conftest import ManualClock, make_config
from tests.mqtt_watch import Subscriber


def fill_outbox(config: AgentConfig, clock: ManualClock, hours: int) -> Store:
    store = Store(config.db_path)
    releaser = WindowReleaser(config, store, clock)
    clock.advance(hours * 3600 + 121)
    assert releaser.tick() == hours
    return store


def pending(store: Store) -> int:
    return int(store.conn().execute("SELECT count(*) FROM outbox WHERE delivered_wall_ns IS NULL").fetchone()[0])


def test_outbox_drains_oldest_first_and_is_marked_on_puback(
    tmp_path: Path, broker: LocalBroker, clock: ManualClock
) -> None:
    config = make_config(tmp_path, broker.port)
    store = fill_outbox(config, clock, 30)
    sub = Subscriber(broker.port)
    publisher = Publisher(config, store)
    publisher.start()
    try:
        sub.wait_for(lambda: len(sub.summaries()) >= 90, 20, "90 summaries (two doors and the total, 30 windows)")
        sub.wait_for(lambda: pending(store) == 0, 10, "every row marked delivered")
    finally:
        publisher.stop()
        sub.close()
    seqs = [m["seq"] for m in sub.summaries()]
    assert seqs == sorted(seqs) == list(range(1, 91))
    topics = {t for t, _p, _r in sub.messages() if not t.endswith("/status")}
    assert topics == {
        "coop/v1/riverside/store-0042/t1/footfall/hourly",
        "coop/v1/riverside/store-0042/t1/footfall-total/hourly",
    }


def test_birth_is_retained_and_counter_rises_only_after_connack(
    tmp_path: Path, broker: LocalBroker, clock: ManualClock
) -> None:
    config = make_config(tmp_path, broker.port)
    store = Store(config.db_path)
    for expected in (1, 2):
        publisher = Publisher(config, store)
        publisher.start()
        sub = Subscriber(broker.port, config.status_topic, client_id=f"status-{expected}")
        sub.wait_for(
            lambda n=expected, watch=sub: any(
                json.loads(p).get("connection") == n and json.loads(p)["state"] == "online"
                for _t, p, _r in watch.messages()
            ),
            10,
            "retained birth",
        )
        sub.close()
        publisher.stop()
    assert store.get_state("mqtt_connections") == "2"


def test_counter_does_not_rise_when_the_broker_is_down(tmp_path: Path, clock: ManualClock) -> None:
    config = make_config(tmp_path, port=1)  # nothing listens on port 1
    store = Store(config.db_path)
    publisher = Publisher(config, store)
    publisher.start()
    try:
        assert not publisher.connected
    finally:
        publisher.stop()
    assert store.get_state("mqtt_connections") is None


def test_last_will_marks_the_shop_offline(tmp_path: Path, broker: LocalBroker, clock: ManualClock) -> None:
    config = make_config(tmp_path, broker.port)
    store = Store(config.db_path)
    publisher = Publisher(config, store)
    publisher.start()
    sub = Subscriber(broker.port, config.status_topic, client_id="will-watch")
    try:
        sub.wait_for(lambda: any(json.loads(p)["state"] == "online" for _t, p, _r in sub.messages()), 10, "birth")
        # Cut the TCP connection without DISCONNECT, as a power cut would: the broker sends the will.
        publisher.client.socket().close()  # type: ignore[union-attr]
        sub.wait_for(lambda: any(json.loads(p)["state"] == "offline" for _t, p, _r in sub.messages()), 15, "will")
    finally:
        sub.close()
        publisher.client.loop_stop()


def test_a_backlog_of_many_hand_over_rounds_drains_without_a_stall(
    tmp_path: Path, broker: LocalBroker, clock: ManualClock
) -> None:
    """max_inflight 1: paho takes 12 rows at a time and the sender is woken only once 6 are free, 100 times
    over; one lost wake-up per round would cost the sender's 0.5 s timeout, 50 s in all."""
    config = make_config(tmp_path, broker.port, extra="max_inflight = 1\n")
    store = Store(config.db_path)
    topic = "coop/v1/riverside/store-0042/t1/footfall/hourly"
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO release_ledger (window_start_ns, window_end_ns, stream, noisy_values, mechanism,"
            " parameters, epsilon, sampler_version, released_wall_ns, prev_hash, hash)"
            " VALUES (0, 1, 'test', '{}', 'x', '{}', '1/2', 'v', 0, '', '')"
        )
        for i in range(600):
            conn.execute(
                "INSERT INTO outbox (msg_id, topic, payload, window_start_ns, ledger_id, created_wall_ns)"
                " VALUES (?, ?, ?, ?, 1, 0)",
                (f"m/{i}", topic, json.dumps({"seq": i + 1, "late": False}), i),
            )
    sub = Subscriber(broker.port)
    publisher = Publisher(config, store)
    assert (publisher.handoff, publisher.refill) == (12, 6)
    publisher.start()
    try:
        sub.wait_for(lambda: pending(store) == 0, 15, "all 600 rows marked delivered")
        sub.wait_for(lambda: len(sub.summaries()) >= 600, 10, "600 summaries at the subscriber")
    finally:
        publisher.stop()
        sub.close()
    assert [m["seq"] for m in sub.summaries()] == list(range(1, 601))
