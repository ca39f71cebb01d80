"""The loopback health and Prometheus endpoint, over real HTTP against a running agent."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from agent.demo.local_broker import LocalBroker
from agent.ops.runtime import Agent
from agent.pipeline.ingest import DriverSink
from tests.conftest import ManualClock, make_config
from tests.mqtt_watch import Subscriber


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_metrics_and_health_over_http(tmp_path: Path, broker: LocalBroker, clock: ManualClock) -> None:
    config = make_config(tmp_path, broker.port, extra='\n[health]\nlisten = "127.0.0.1:0"\n')
    agent = Agent(config, clock)
    sub = Subscriber(broker.port, "coop/v1/+/+/t1/#")
    agent.start()
    try:
        clock.advance(2 * 3600 + 121)
        agent._window_tick()
        sub.wait_for(lambda: len(sub.summaries()) >= 6, 15, "two released windows at the broker")
        assert agent.health_server is not None
        sink = DriverSink(agent.ingest, "front_sensor")  # what a driver reports, as the supervisor wires it
        sink.bad_frame("front_sensor", "crc")
        sink.bad_frame("front_sensor", "crc")
        sink.problem("front_sensor", "unplugged")
        base = f"http://127.0.0.1:{agent.health_server.port}"
        code, body = get(base + "/metrics")
        assert code == 200
        metrics = {
            line.split(" ")[0]: float(line.split(" ")[1])
            for line in body.splitlines()
            if line and not line.startswith("#")
        }
        assert metrics['shopkeeper_windows_released_total{stream="footfall_door"}'] == 2
        # Per window, over all streams of the unit (footfall_door 0.5 + footfall_store 0.5), never summed over windows.
        assert metrics['shopkeeper_epsilon_last_window{unit="door_event"}'] == 1.0
        assert metrics["shopkeeper_epsilon_budget_per_window"] == 1.0
        assert metrics["shopkeeper_mqtt_connected"] == 1 and metrics["shopkeeper_clock_synced"] == 1
        assert 'shopkeeper_dropped_total{reason="size"}' in metrics
        assert metrics['shopkeeper_bad_frames_reported_total{driver="front_sensor",reason="crc"}'] == 2
        assert metrics['shopkeeper_driver_problems_total{driver="front_sensor"}'] == 1
        assert metrics["shopkeeper_duplicate_baskets_total"] == 0
        assert "# TYPE shopkeeper_outbox_pending gauge" in body
        code, body = get(base + "/health")
        assert code == 200 and json.loads(body)["status"] == "ok"
        clock.is_synced = False
        code, body = get(base + "/health")
        assert code == 503 and "clock not synchronised" in " ".join(json.loads(body)["reasons"])
        assert get(base + "/nope")[0] == 404
    finally:
        sub.close()
        agent.stop()


def test_an_unreachable_home_assistant_broker_degrades_health_and_is_logged_once(
    tmp_path: Path, broker: LocalBroker, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    from agent.demo.local_broker import free_port

    nobody = free_port()  # the shop's broker is down: nothing listens there
    extra = f'\n[health]\nlisten = "127.0.0.1:0"\n\n[home_assistant]\nenabled = true\nport = {nobody}\n'
    agent = Agent(make_config(tmp_path, broker.port, extra=extra), clock)
    caplog.set_level(logging.WARNING, logger="agent.owner.home_assistant")
    agent.start()
    try:
        assert agent.health_server is not None
        url = f"http://127.0.0.1:{agent.health_server.port}/health"
        deadline = time.monotonic() + 10
        while "cannot reach" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        code, body = get(url)
        assert code == 503
        assert f"not connected to the shop's Home Assistant broker 127.0.0.1:{nobody}" in json.loads(body)["reasons"]
        time.sleep(2.5)  # paho retries (1 s, then 2 s): still one line
        assert caplog.text.count("cannot reach the shop's broker") == 1
    finally:
        agent.stop()
