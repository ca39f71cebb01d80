"""End to end on real parts: Terabee simulator on ptys -> agent process -> SQLite -> Mosquitto -> subscriber."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from agent.contract import schema_document
from agent.demo.local_broker import LocalBroker
from agent.privacy.sampler import laplace_tail_bound
from tests.e2e.harness import DOORS, Shop, wait_until
from tests.mqtt_watch import Subscriber

FAILURE_PROBABILITY = 1e-6


def schema(name: str) -> dict:  # type: ignore[type-arg]
    return schema_document(name)


@pytest.mark.slow
def test_a_simulated_day_arrives_once_per_window_and_door_within_the_noise_bound(
    tmp_path: Path, broker: LocalBroker
) -> None:
    shop = Shop(
        tmp_path / "shop",
        broker.port,
        factor=1440,
        hours=24,
        sim_extra=("--sensor-id", "--faults", "garbage,crc,truncate", "--fault-rate", "0.05"),
    )
    sub = Subscriber(broker.port, "#")
    try:
        shop.start_agent()
        shop.start_sim()
        truth = shop.wait_sim(timeout=120)
        wait_until(
            lambda: (
                shop.query("SELECT 1 FROM release_ledger WHERE window_end_ns >= ?", shop.day_end_ns) != []
                and shop.query("SELECT 1 FROM outbox WHERE delivered_wall_ns IS NULL") == []
            ),
            60,
            "the day's last window to be released and delivered",
            shop.agent_log,
        )
        expected_count = len(shop.query("SELECT msg_id FROM outbox"))
        wait_until(lambda: len(sub.summaries()) >= expected_count, 20, "every summary at the subscriber")
        events = shop.query("SELECT boot_id, mono_ns, wall_ns, driver FROM events")
    finally:
        shop.stop()
        sub.close()

    summaries = sub.summaries()
    # One summary per window and door, nothing twice, in release order.
    keys = [(m["window"]["start"], m.get("door", "all")) for m in summaries]
    assert len(keys) == len(set(keys)) == expected_count
    windows = sorted({m["window"]["start"] for m in summaries})
    assert all({(w, d) for d in (*DOORS, "all")} <= set(keys) for w in windows)
    assert [m["seq"] for m in summaries] == sorted(m["seq"] for m in summaries)
    day_hours = set(truth["doors"]["front"])
    assert day_hours <= set(windows), "every hour of the simulated day was released"
    assert sum(v["entries"] for d in truth["doors"].values() for v in d.values()) > 300, "the day had real traffic"

    # Every value lies within the noise bound of the simulator's ground truth: with scale 2 (epsilon 1/2),
    # P(any of the n draws exceeds the bound) <= 1e-6, so this test fails by chance at most once in a million runs.
    bound = laplace_tail_bound(2, 1, 2 * len(summaries), FAILURE_PROBABILITY)
    for m in summaries:
        doors = DOORS if "door" not in m else (m["door"],)
        for field in ("entries", "exits"):
            true = sum(truth["doors"][d].get(m["window"]["start"], {}).get(field, 0) for d in doors)
            assert abs(m["values"][field] - true) < bound, (m, true, bound)

    # Nothing raw leaves: only the declared topics, only schema-valid payloads (no extra fields), and no raw
    # stamp, boot id, driver name, device serial or frame byte anywhere on the wire.
    schemas = {f"shopkeeper.{n}.v1": schema(f"{n}.v1.json") for n in ("footfall-door", "footfall-store")}
    wire = sub.messages()
    topics = {t for t, _p, _r in wire}
    assert topics == {
        "coop/v1/riverside/demo-store/t1/footfall/hourly",
        "coop/v1/riverside/demo-store/t1/footfall-total/hourly",
        "coop/v1/riverside/demo-store/status",
    }
    for topic, payload, _retain in wire:
        message = json.loads(payload)
        if topic.endswith("/status"):
            jsonschema.validate(message, schema("status.v1.json"))
        else:
            jsonschema.validate(message, schemas[message["schema"]])
    blob = b"\n".join(p for _t, p, _r in wire)
    assert b"PC" not in blob and b"\x00" not in blob
    serials = [0x5E000000 + i for i in range(len(DOORS))]
    for serial in serials:
        assert str(serial).encode() not in blob and f"{serial:08x}".encode() not in blob.lower()
    assert events, "the agent accepted readings"
    for boot_id, mono_ns, wall_ns, driver in events[:200]:
        assert boot_id.encode() not in blob and str(wall_ns).encode() not in blob and str(mono_ns).encode() not in blob
        assert driver.encode() not in blob
