"""End to end: three real agents on Terabee simulators, a real Mosquitto, real hub processes.

Each agent is `python -m agent.cli run` on its own simulator (ptys) on one accelerated clock. Two
hubs subscribe independently: one with k_min = 3 (benchmarks appear for windows all three shops
completed), one with k_min = 4 (none may appear). One agent is SIGKILLed; the broker publishes its
last will after the keepalive expires, and the hub must show that shop offline.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agent.clock import NS_PER_S, AcceleratedClock
from agent.demo import simulator_command, write_demo_config
from agent.demo.local_broker import LocalBroker, free_port
from hub.contract import hub_validator
from hub.db import Database
from tests.hub.conftest import REPO, HubProcess, dashboard_cookie, http_get, wait_for, write_hub_config
from tests.mqtt_watch import Subscriber

DAY_START = dt.datetime(2026, 11, 16, tzinfo=dt.UTC)
HOURS = 3
FACTOR = 720.0  # 3 simulated hours in 15 s
LEAD_S = 10.0  # real seconds before the simulated day starts: the agents' start-up time
SHOPS = ("shop-a", "shop-b", "shop-c")


def outbox(db_path: Path) -> list[tuple[str, str, int | None]]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        return [
            (str(r[0]), str(r[1]), r[2])
            for r in conn.execute("SELECT msg_id, payload, delivered_wall_ns FROM outbox WHERE payload != ''")
        ]
    finally:
        conn.close()


def start_agent(
    root: Path, shop: str, port: int, clock: AcceleratedClock, seed: int, keepalive: int | None
) -> dict[str, Any]:
    workdir = root / shop
    (workdir / "dev").mkdir(parents=True)
    links = {door: workdir / "dev" / f"terabee-{door}" for door in ("front", "back")}
    config = write_demo_config(workdir, port, links)
    text = config.read_text().replace('store = "demo-store"', f'store = "{shop}"')
    if keepalive:
        text = text.replace(f"port = {port}\n", f"port = {port}\nkeepalive_s = {keepalive}\n")
    config.write_text(text)
    env = {**os.environ, **clock.env(), "NUMBA_CACHE_DIR": str(REPO / ".numba-cache")}
    log = (workdir / "run.log").open("wb")
    sim = subprocess.Popen(
        simulator_command(links, DAY_START, HOURS, seed, workdir / "truth.json", FACTOR),
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=log,
    )
    agent = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "run", str(config)], cwd=REPO, env=env, stdout=log, stderr=log
    )
    return {"shop": shop, "sim": sim, "agent": agent, "db": workdir / "data" / "shopkeeper.db", "log": log}


@pytest.mark.slow
def test_real_agents_each_summary_once_benchmarks_at_k_and_last_will(tmp_path: Path) -> None:
    broker = LocalBroker(tmp_path / "broker").start()
    agents: list[dict[str, Any]] = []
    hubs: list[HubProcess] = []
    watcher: Subscriber | None = None
    try:
        dash = free_port()
        db3, db4 = tmp_path / "hub-k3.db", tmp_path / "hub-k4.db"
        hubs = [
            HubProcess(
                write_hub_config(
                    tmp_path / "k3.toml", broker.port, str(db3), k_min=3, worker_id="k3", dashboard=f"127.0.0.1:{dash}"
                ),
                tmp_path / "k3.log",
            ).start(),
            HubProcess(
                write_hub_config(tmp_path / "k4.toml", broker.port, str(db4), k_min=4, worker_id="k4"),
                tmp_path / "k4.log",
            ).start(),
        ]
        for hub in hubs:
            hub.wait_subscribed()
        watcher = Subscriber(broker.port, "coop/v1/riverside/_hub/#", client_id="bench-watch")
        origin = int(DAY_START.timestamp()) * NS_PER_S
        clock = AcceleratedClock(origin_ns=origin, factor=FACTOR, anchor_ns=time.time_ns() + int(LEAD_S * 1e9))
        agents = [
            start_agent(tmp_path, shop, broker.port, clock, seed=11 + i, keepalive=5 if shop == "shop-c" else None)
            for i, shop in enumerate(SHOPS)
        ]
        end_ns = origin + HOURS * 3600 * NS_PER_S
        # Wait for the simulated day's last window to be released (end + grace) and delivered by every agent.
        time.sleep(max(0.0, (clock.real_ns_at(end_ns + 150 * NS_PER_S) - time.time_ns()) / 1e9))

        def day_delivered() -> bool:
            for a in agents:
                rows = [r for r in outbox(a["db"]) if "T02:00:00Z" in r[0]]
                if len(rows) < 2 or any(r[2] is None for r in rows):
                    return False
            return True

        wait_for(day_delivered, 60, "every agent to deliver its 02:00 window")
        victim = agents[2]
        victim["agent"].send_signal(signal.SIGKILL)
        victim["agent"].wait(10)

        def state(shop: str) -> str:
            status = json.loads(http_get(f"http://127.0.0.1:{dash}/api/status", dashboard_cookie(str(db3)))[1])
            return next((s["state"] for s in status["stores"] if s["store"] == shop), "missing")

        wait_for(lambda: state("shop-c") == "offline", 30, "the hub to show shop-c offline after its last will")
        assert state("shop-a") == state("shop-b") == "online"
        for a in agents[:2]:
            a["agent"].send_signal(signal.SIGTERM)
            assert a["agent"].wait(30) == 0
        rows = {a["shop"]: outbox(a["db"]) for a in agents}
        delivered = {m: p for shop in SHOPS for m, p, d in rows[shop] if d is not None}
        everything = {m: p for shop in SHOPS for m, p, _d in rows[shop]}
        assert all(d is not None for shop in ("shop-a", "shop-b") for _m, _p, d in rows[shop])

        def hub_rows(path: Path) -> dict[str, str]:
            conn = Database(str(path)).connect()
            try:
                return {str(m): str(p) for m, p in conn.query("SELECT msg_id, payload FROM summaries")}
            finally:
                conn.close()

        def holds_every_delivery(path: Path) -> bool:
            return set(delivered) <= set(hub_rows(path))

        for path in (db3, db4):
            wait_for(lambda: holds_every_delivery(path), 30, f"{path.name} to hold every delivery")  # noqa: B023
            stored = hub_rows(path)
            # Exactly once: msg_id is the primary key; every delivered summary is there byte for byte, and
            # nothing is there that no agent released (a killed agent's in-flight message may be either way).
            assert set(delivered) <= set(stored) <= set(everything)
            assert all(stored[m] == everything[m] for m in stored)
            assert len(stored) >= 3 * HOURS * 2  # at least both doors of every shop and hour

        # Benchmarks: exactly the windows all three shops completed (a store total, or both doors), at k = 3;
        # none at k = 4.
        parts: dict[tuple[str, str], set[str]] = {}
        for payload in hub_rows(db3).values():
            doc = json.loads(payload)
            parts.setdefault((doc["window"]["start"], doc["store"]), set()).add(doc.get("door", "total"))
        complete: dict[str, int] = {}
        for (window, _shop), keys in parts.items():
            if "total" in keys or {"front", "back"} <= keys:
                complete[window] = complete.get(window, 0) + 1
        expected = {w for w, n in complete.items() if n >= 3}
        assert len(expected) >= HOURS

        def benchmark_windows(path: Path) -> set[str]:
            conn = Database(str(path)).connect()
            try:
                return {json.loads(r[0])["window"]["start"] for r in conn.query("SELECT payload FROM benchmarks")}
            finally:
                conn.close()

        wait_for(lambda: benchmark_windows(db3) == expected, 20, "k=3 benchmarks for every complete window")
        assert benchmark_windows(db4) == set()
        published = {}
        for topic, raw, _retain in watcher.messages():
            if "/benchmarks/" in topic:
                doc = json.loads(raw)
                assert list(hub_validator("benchmark.v1.json").iter_errors(doc)) == []
                assert doc["n_shops"] >= 3 and doc["p25"] <= doc["median"] <= doc["p75"]
                published[doc["window"]["start"]] = topic
        assert set(published) == expected
        assert all(t.startswith("coop/v1/riverside/_hub/t1/benchmarks/footfall/") for t in published.values())
        alerts = [json.loads(p) for t, p, _r in watcher.messages() if "/alerts/shop-c" in t]
        assert any(a["kind"] == "offline" for a in alerts)
    finally:
        if watcher:
            watcher.close()
        for a in agents:
            for proc in (a["agent"], a["sim"]):
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(15)
                    except subprocess.TimeoutExpired:
                        proc.kill()
            a["log"].close()
        for hub in hubs:
            hub.stop()
        broker.stop()
