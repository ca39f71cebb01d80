"""A running agent takes the coop's queries from the broker: answers on its own topic, refusals in health."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.clock import NS_PER_S
from agent.contract.licensing import answer_topic, query_topic
from agent.demo.local_broker import LocalBroker
from agent.ops.runtime import Agent
from tests.conftest import ManualClock, make_config
from tests.licensing_kit import OTHER_KEY, encode, licensing_section, signed_query
from tests.mqtt_watch import Subscriber


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def publish(port: int, payload: bytes) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="coop-desk")
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.publish(query_topic("riverside"), payload, qos=1).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def test_agent_answers_a_query_and_shows_a_forged_one_in_health(
    tmp_path: Path, broker: LocalBroker, clock: ManualClock
) -> None:
    extra = '\n[health]\nlisten = "127.0.0.1:0"\n' + licensing_section()
    config = make_config(tmp_path, broker.port, extra=extra, lifetime='lifetime_epsilon_per_window = "2"')
    agent = Agent(config, clock)
    answers = Subscriber(broker.port, answer_topic("riverside", "store-0042"))
    agent.start()
    try:
        clock.advance(24 * 3600 + 121)
        agent._window_tick()  # the day of 2025-11-16 is released
        answers.wait_for(lambda: agent.publisher.connected, 10, "the agent to connect")
        publish(broker.port, encode(signed_query(clock.wall_ns() + 3600 * NS_PER_S)))
        publish(broker.port, encode(signed_query(clock.wall_ns() + 3600 * NS_PER_S, key=OTHER_KEY)))
        agent.store.conn()  # the test thread's own connection, for the wait below
        answers.wait_for(
            lambda: (
                agent.store.get_state("licensing_last_refusal") is not None
                and agent.store.conn().execute("SELECT count(*) FROM licensing_queries").fetchone()[0] == 1
            ),
            10,
            "both queries to arrive",
        )
        agent._window_tick()
        answers.wait_for(lambda: len(answers.messages()) == 1, 10, "the answer at the broker")
        (answer,) = [json.loads(p) for _t, p, _r in answers.messages()]
        assert answer["status"] == "answered" and len(answer["values"]) == 168
        assert agent.health_server is not None
        base = f"http://127.0.0.1:{agent.health_server.port}"
        code, body = get(base + "/health")
        assert code == 503 and any("refused a licensing query (forged)" in r for r in json.loads(body)["reasons"])
        _code, metrics = get(base + "/metrics")
        assert 'shopkeeper_licensing_queries_refused_total{reason="forged"} 1' in metrics
    finally:
        agent.stop()
        answers.close()
