"""Store-and-forward figures: draining a 10,000-summary backlog, and agent RSS after short and long outages.

Usage: .venv/bin/python bench/bench_store_forward.py

Baselines in the same run: the drain is compared with a bare paho client publishing the same payloads
at QoS 1 with the same in-flight window (no SQLite), once with paho's default protocol (MQTT 3.1.1, the
issue's baseline) and once with MQTT v5, the protocol the agent speaks (its PUBACK reason codes are how a
refused topic is seen), whose PUBACKs paho decodes at more cost; and the long outage's RSS with the short
one's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.clock import NS_PER_S, AcceleratedClock
from agent.config import load_config
from agent.demo import DAY_START, write_demo_config
from agent.demo.local_broker import LocalBroker, free_port
from agent.pipeline.publish import Publisher
from agent.store import Store

BACKLOG = 10_000


def fill_backlog(store: Store, n: int) -> list[tuple[str, str]]:
    rows = []
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO release_ledger (window_start_ns, window_end_ns, stream, noisy_values, mechanism,"
            " parameters, epsilon, sampler_version, released_wall_ns, prev_hash, hash)"
            " VALUES (0, 1, 'bench', '{}', 'x', '{}', '1/2', 'v', 0, '', '')"
        )
        for i in range(n):
            payload = json.dumps({"msg_id": f"bench/{i}", "seq": i + 1, "values": {"entries": i % 50, "exits": 3}})
            rows.append(("coop/v1/bench/store/t1/footfall/hourly", payload))
            conn.execute(
                "INSERT INTO outbox (msg_id, topic, payload, window_start_ns, ledger_id, created_wall_ns)"
                " VALUES (?, ?, ?, ?, 1, 0)",
                (f"bench/{i}", rows[-1][0], payload, i),
            )
    return rows


def bench_drain(workdir: Path) -> dict[str, Any]:
    with LocalBroker(workdir / "broker") as broker:
        config = load_config(write_demo_config(workdir, broker.port, {"front": workdir / "no-device"}))
        store = Store(config.db_path)
        rows = fill_backlog(store, BACKLOG)
        publisher = Publisher(config, store)
        start = time.perf_counter()
        publisher.start()
        while store.conn().execute("SELECT count(*) FROM outbox WHERE delivered_wall_ns IS NULL").fetchone()[0]:
            time.sleep(0.01)
        drain_s = time.perf_counter() - start
        publisher.stop()
        bare_s = bare_drain(broker.port, rows, config.mqtt.max_inflight, mqtt.MQTTv311)
        bare_v5_s = bare_drain(broker.port, rows, config.mqtt.max_inflight, mqtt.MQTTv5)
    return {
        "drain.msgs_per_s": round(BACKLOG / drain_s),
        "drain.bare_paho_msgs_per_s": round(BACKLOG / bare_s),
        "drain.ratio_vs_bare_paho": round(bare_s / drain_s, 3),
        "drain.bare_paho_v5_msgs_per_s": round(BACKLOG / bare_v5_s),
        "drain.ratio_vs_bare_paho_v5": round(bare_v5_s / drain_s, 3),
    }


def bare_drain(port: int, rows: list[tuple[str, str]], inflight: int, protocol: int) -> float:
    """Seconds for a bare paho client to publish `rows` at QoS 1 and see every PUBACK (no database)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-bare-{protocol}", protocol=protocol)
    client.max_inflight_messages_set(inflight)
    client.max_queued_messages_set(0)
    done = threading.Event()
    acked = [0]

    def on_publish(*_args: Any) -> None:
        acked[0] += 1
        if acked[0] == len(rows):
            done.set()

    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    start = time.perf_counter()
    for topic, payload in rows:
        client.publish(topic, payload, qos=1)
    done.wait(300)
    seconds = time.perf_counter() - start
    client.loop_stop()
    client.disconnect()
    return seconds


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_outage(workdir: Path) -> dict[str, Any]:
    """The agent runs with its broker down; RSS after a simulated day and after a simulated week."""
    factor = 36_000.0  # ten simulated hours a real second
    workdir.mkdir(parents=True, exist_ok=True)
    config = write_demo_config(workdir, free_port(), {"front": workdir / "no-device"})
    clock = AcceleratedClock.starting_now(int(DAY_START.timestamp()) * NS_PER_S, factor)
    agent = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "run", str(config)],
        env={**os.environ, **clock.env()},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(24 * 3600 / factor + 2)
        short = rss_mb(agent.pid)
        time.sleep(6 * 24 * 3600 / factor)
        long = rss_mb(agent.pid)
        db = Store(workdir / "data" / "shopkeeper.db")
        pending = db.conn().execute("SELECT count(*) FROM outbox WHERE delivered_wall_ns IS NULL").fetchone()[0]
        db.close()
    finally:
        agent.terminate()
        agent.wait(30)
    return {
        "outage.rss_mb_short": round(short, 1),
        "outage.rss_mb_long": round(long, 1),
        "outage.rss_ratio_long_vs_short": round(long / short, 3),
        "outage.pending_after_long": pending,
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        figures: dict[str, Any] = {}
        figures.update(bench_drain(Path(tmp) / "drain"))
        figures.update(bench_outage(Path(tmp) / "outage"))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
