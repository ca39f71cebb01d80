"""Home Assistant on the shop's own broker, on real processes and two real Mosquittos on loopback ports.

The agent runs a simulated morning with `[home_assistant]` pointing at a LOCAL broker. That broker gets
Home Assistant's discovery configs (retained) and, per window and door, the exact counts the SQLite file
holds; the coop's broker, watched on `#`, sees only the coop's topics, each message a status or a
differentially private summary: never a discovery config, a state topic or an exact figure's message.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
from pathlib import Path

import pytest

from agent.clock import NS_PER_S
from agent.demo import DAY_START
from agent.demo.local_broker import LocalBroker
from tests.e2e.harness import DOORS, Shop, wait_until
from tests.mqtt_watch import Subscriber

STATE_PREFIX = "shopkeeper/demo-store"
ENTITIES = {f"{d}_{k}" for d in (*DOORS, "shop") for k in ("entries", "exits")} | {"window_start"}


def window_finals(local: Subscriber) -> dict[str, dict[str, str]]:
    """window start -> the states last sent for it, read off the local broker in arrival order."""
    current: dict[str, str] = {}
    finals: dict[str, dict[str, str]] = {}
    for topic, payload, _retained in local.messages():
        if not topic.startswith(STATE_PREFIX + "/") or topic.endswith("/availability"):
            continue
        key, value = topic[len(STATE_PREFIX) + 1 :], payload.decode()
        if key == "window_start" and current.get("window_start") not in (None, value):
            finals[current["window_start"]] = dict(current)  # the agent moved on: these were final
        current[key] = value
    return finals


def exact(shop: Shop, window_start: str) -> dict[str, str]:
    start = int(dt.datetime.strptime(window_start, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp())
    lo, hi = start * NS_PER_S, (start + 3600) * NS_PER_S
    rows = dict(
        (door, (int(e), int(x)))
        for door, e, x in shop.query(
            "SELECT door, sum(entries), sum(exits) FROM events WHERE synced = 1 AND wall_ns >= ? AND wall_ns < ?"
            " GROUP BY door",
            lo,
            hi,
        )
    )
    values = {"window_start": window_start}
    for door in DOORS:
        values[f"{door}_entries"], values[f"{door}_exits"] = (str(v) for v in rows.get(door, (0, 0)))
    values["shop_entries"] = str(sum(e for e, _x in rows.values()))
    values["shop_exits"] = str(sum(x for _e, x in rows.values()))
    return values


@pytest.mark.slow
def test_exact_figures_reach_the_local_broker_only(tmp_path: Path, broker: LocalBroker) -> None:
    local_broker = LocalBroker(tmp_path / "shop-broker").start()
    # Opening time, at x720 (an hour in 5 s): the traffic keeps 120 simulated seconds (167 ms) off each
    # hour's edge, so every reading of a window is committed while the next window is still young.
    shop = Shop(
        tmp_path / "shop", broker.port, factor=720, hours=4, lead_s=300, start=DAY_START + dt.timedelta(hours=8)
    )
    shop.config_path.write_text(
        shop.config_path.read_text() + f"\n[home_assistant]\nenabled = true\nport = {local_broker.port}\n"
    )
    coop = Subscriber(broker.port, "#", client_id="coop-watch")
    local = Subscriber(local_broker.port, "#", client_id="home-assistant-watch")
    try:
        shop.start_agent()
        shop.start_sim()
        wait_until(lambda: len(window_finals(local)) >= 3, 60, "three windows' states on the shop's broker",
                   shop.agent_log)  # fmt: skip
        shop.kill_agent(signal.SIGTERM)
        retained = Subscriber(local_broker.port, "homeassistant/#", client_id="late-home-assistant")
        wait_until(lambda: len(retained.messages()) >= len(ENTITIES), 10, "the retained discovery configs")
        configs = {t: json.loads(p) for t, p, r in retained.messages() if r}
        retained.close()
    finally:
        shop.stop()
        coop.close()
        local.close()
        local_broker.stop()

    # Discovery: one retained config per entity, Home Assistant's topic layout, each naming its state topic.
    assert {t.split("/")[3] for t in configs} >= ENTITIES
    for topic, config in configs.items():
        node, object_id = topic.split("/")[2:4]
        assert topic == f"homeassistant/sensor/{node}/{object_id}/config" and node == "demo_store"
        assert config["state_topic"] == f"{STATE_PREFIX}/{object_id}"
        assert config["unique_id"] == f"shopkeeper_demo_store_{object_id}"
        assert config["device"]["identifiers"] == ["shopkeeper_demo_store"]
        assert config["availability_topic"] == f"{STATE_PREFIX}/availability"
    # States: per window and door, exactly what the SQLite file holds.
    finals = window_finals(local)
    assert sum(int(f["shop_entries"]) for f in finals.values()) > 0, "the windows compared saw real traffic"
    for window_start, sent in finals.items():
        assert sent == exact(shop, window_start), window_start
    # The coop's broker: its own topics only, every message a status or a private summary.
    seen = coop.messages()
    assert seen, "the coop's broker saw the agent's summaries"
    for topic, payload, _retained in seen:
        assert topic.startswith("coop/v1/riverside/demo-store/"), topic
        assert "homeassistant" not in topic and not topic.startswith("shopkeeper/")
        if not topic.endswith("/status"):
            message = json.loads(payload)
            assert message["privacy"]["mechanism"] in ("discrete_laplace", "discrete_gaussian"), message
        assert b"unique_id" not in payload and STATE_PREFIX.encode() not in payload
