"""End to end on 1-minute, 15-minute and hourly windows: real agents, real Mosquitto, a real hub process.

Three `python -m agent.cli run` processes on Terabee simulators share one accelerated clock on which every
window lasts three real seconds. The hub (k_min = 3) holds one seeded week of history for the same windows,
ten thousand entries each, so every shop's real footfall today is far below its own baseline. It must store
every summary with its length, publish a benchmark of that length for every window all three shops completed,
alert on each shop's windows, flag the killed shop silent in its own windows (and offline by its last will),
and its dashboard must show all of it for that window length. Each agent receives the benchmarks of its own
length only.
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
from agent.contract import benchmark_topic, iso_seconds, window_name
from agent.demo import simulator_command, write_demo_config
from agent.demo.local_broker import LocalBroker, free_port
from devtools.loadgen import synthetic_summary
from hub.contract import Summary, hub_validator, parse_message
from hub.db import Database
from hub.storage import store_batch
from tests.hub.conftest import REPO, HubProcess, dashboard_cookie, http_get, wait_for, write_hub_config
from tests.hub.test_hub_end_to_end import outbox
from tests.mqtt_watch import Subscriber

DAY = dt.datetime(2026, 11, 16, 10, tzinfo=dt.UTC)  # a Monday, shops open
WINDOWS = 6  # simulated windows of the day
REAL_S_PER_WINDOW = 3.0
LEAD_S = 10.0  # real seconds before the day starts: the agents' start-up time
SHOPS = ("shop-a", "shop-b", "shop-c")
WEEK_S = 7 * 86400
HISTORY_ENTRIES = 5000  # per door and window, a week before: far above any real window today


def start_agent(
    root: Path, shop: str, port: int, clock: AcceleratedClock, window_s: int, seed: int, keepalive: int | None
) -> dict[str, Any]:
    workdir = root / shop
    (workdir / "dev").mkdir(parents=True)
    links = {door: workdir / "dev" / f"terabee-{door}" for door in ("front", "back")}
    config = write_demo_config(workdir, port, links, window=f"{window_s}s", grace=f"{window_s // 12}s")
    text = config.read_text().replace('store = "demo-store"', f'store = "{shop}"')
    if keepalive:
        text = text.replace(f"port = {port}\n", f"port = {port}\nkeepalive_s = {keepalive}\n")
    config.write_text(text)
    return launch_shop(workdir, shop, config, links, clock, seed, WINDOWS * window_s / 3600)


def launch_shop(
    workdir: Path, shop: str, config: Path, links: dict[str, Path], clock: AcceleratedClock, seed: int, hours: float
) -> dict[str, Any]:
    """The shop's simulator and agent as real processes, sharing one accelerated clock and one log."""
    env = {**os.environ, **clock.env(), "NUMBA_CACHE_DIR": str(REPO / ".numba-cache")}
    log = (workdir / "run.log").open("wb")
    sim = subprocess.Popen(
        simulator_command(links, DAY, hours, seed, workdir / "truth.json", clock.factor),  # type: ignore[arg-type]
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=log,
    )
    agent = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "run", str(config)], cwd=REPO, env=env, stdout=log, stderr=log
    )
    return {"shop": shop, "sim": sim, "agent": agent, "db": workdir / "data" / "shopkeeper.db", "log": log}


def seed_history(db_path: Path, window_s: int, day_s: int) -> None:
    """Last week's released footfall of the day's windows, as the hub would have stored it."""
    database = Database(str(db_path))
    database.migrate()
    rows = []
    for shop in SHOPS:
        for i in range(WINDOWS):
            for d, door in enumerate(("front", "back")):
                start = day_s - WEEK_S + i * window_s
                topic, payload = synthetic_summary(
                    "riverside", shop, door, start, 2 * i + d + 1, HISTORY_ENTRIES, window_s=window_s
                )
                parsed = parse_message("riverside", topic, payload.encode())
                assert isinstance(parsed, Summary), parsed
                rows.append(parsed)
    conn = database.connect()
    try:
        assert store_batch(conn, "seed", rows).stored == len(rows)
        # History only: the shops become known (and can fall silent) when their agents first publish.
        conn.execute("DELETE FROM stores")
    finally:
        conn.close()


def delivered_window(agent: dict[str, Any], start_s: int) -> bool:
    try:
        rows = [r for r in outbox(agent["db"]) if f"/{iso_seconds(start_s)}" in r[0]]
    except sqlite3.OperationalError:
        return False  # the agent is still creating its database
    return len(rows) >= 3 and all(r[2] is not None for r in rows)  # both doors and the store total


def district_benchmarks(agent: dict[str, Any]) -> set[str]:
    conn = sqlite3.connect(f"file:{agent['db']}?mode=ro", uri=True, timeout=10)
    try:
        return {str(r[0]) for r in conn.execute("SELECT window_start FROM district_benchmarks")}
    finally:
        conn.close()


def hub_query(db_path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = Database(str(db_path)).connect()
    try:
        return conn.query(sql)
    finally:
        conn.close()


@pytest.mark.slow
@pytest.mark.parametrize("window_s", [60, 900, 3600], ids=["1min", "15min", "hourly"])
def test_real_agents_on_any_window_length_are_stored_benchmarked_alerted_and_shown(
    tmp_path: Path, window_s: int
) -> None:
    name = window_name(window_s)
    day_s = int(DAY.timestamp())
    db_path = tmp_path / "hub.db"
    seed_history(db_path, window_s, day_s)
    broker = LocalBroker(tmp_path / "broker").start()
    agents: list[dict[str, Any]] = []
    hub: HubProcess | None = None
    watcher: Subscriber | None = None
    try:
        dash = free_port()
        config = write_hub_config(
            tmp_path / "hub.toml", broker.port, str(db_path), k_min=3, dashboard=f"127.0.0.1:{dash}"
        )
        config.write_text(config.read_text() + "\n[alerts]\nweeks = 1\nmin_weeks = 1\n")
        hub = HubProcess(config, tmp_path / "hub.log").start()
        hub.wait_subscribed()
        watcher = Subscriber(broker.port, "coop/v1/riverside/_hub/#", client_id="hub-watch")
        clock = AcceleratedClock(
            origin_ns=day_s * NS_PER_S,
            factor=window_s / REAL_S_PER_WINDOW,
            anchor_ns=time.time_ns() + int(LEAD_S * 1e9),
        )
        agents = [
            start_agent(tmp_path, shop, broker.port, clock, window_s, 21 + i, 5 if shop == "shop-c" else None)
            for i, shop in enumerate(SHOPS)
        ]
        day = [day_s + i * window_s for i in range(WINDOWS)]
        budget = LEAD_S + WINDOWS * REAL_S_PER_WINDOW + 60
        wait_for(lambda: all(delivered_window(a, day[1]) for a in agents), budget, "every shop's second window")
        victim = agents[2]
        victim["agent"].send_signal(signal.SIGKILL)
        victim["agent"].wait(10)

        def alerts(shop: str) -> list[dict[str, Any]]:
            return [json.loads(p) for t, p, _r in watcher.messages() if t.endswith(f"/alerts/{shop}")]

        wait_for(lambda: all(delivered_window(a, day[-1]) for a in agents[:2]), budget, "the day's last window")
        wait_for(
            lambda: {"silent", "offline"} <= {a["kind"] for a in alerts("shop-c")}, 30, "shop-c flagged silent, offline"
        )
        for a in agents[:2]:
            a["agent"].send_signal(signal.SIGTERM)
            assert a["agent"].wait(30) == 0

        # Stored: every delivered summary, byte for byte, with its window length and its stream names.
        delivered = {m: p for a in agents for m, p, d in outbox(a["db"]) if d is not None}
        wait_for(
            lambda: set(delivered) <= {str(r[0]) for r in hub_query(db_path, "SELECT msg_id FROM summaries")},
            30,
            "the hub to hold every delivery",
        )
        stored = {
            str(m): (str(p), int(s), str(st))
            for m, p, s, st in hub_query(db_path, "SELECT msg_id, payload, window_seconds, stream FROM summaries")
        }
        assert all(stored[m][0] == p for m, p in delivered.items())
        assert {stored[m][1] for m in delivered} == {window_s}
        assert {stored[m][2] for m in delivered} == {f"footfall/{name}", f"footfall-total/{name}"}

        # Benchmarks of this length for exactly the windows all three shops completed today (by what the hub
        # holds: the killed agent's last message may have arrived without its PUBACK being recorded).
        cutoff = iso_seconds(day_s - WEEK_S // 2)  # today's windows, not the seeded history
        per_window: dict[str, set[str]] = {}
        for payload, _seconds, _stream in stored.values():
            doc = json.loads(payload)
            if "door" not in doc and doc["window"]["start"] >= cutoff:  # a store total makes a shop-window complete
                per_window.setdefault(doc["window"]["start"], set()).add(doc["store"])
        expected = {w for w, shops in per_window.items() if len(shops) == 3}
        assert {iso_seconds(day[0]), iso_seconds(day[1])} <= expected

        def benchmark_windows() -> set[str]:
            rows = hub_query(db_path, "SELECT payload FROM benchmarks WHERE metric = 'footfall'")
            docs = [json.loads(r[0]) for r in rows]
            assert {d["window"]["seconds"] for d in docs} <= {window_s}
            return {d["window"]["start"] for d in docs if d["window"]["start"] >= cutoff}

        wait_for(lambda: benchmark_windows() == expected, 20, "a benchmark for every window all shops completed")
        published = {}
        for topic, raw, retain in watcher.messages():
            if "/benchmarks/footfall/" in topic:
                doc = json.loads(raw)
                assert list(hub_validator("benchmark.v1.json").iter_errors(doc)) == []
                assert doc["window"]["seconds"] == window_s and doc["n_shops"] == 3
                if topic.endswith("/latest"):  # the one retained topic of the stream: its newest window
                    assert topic == benchmark_topic("riverside", "footfall", window_s, "latest")
                    continue
                assert not retain  # per-window benchmarks are not retained
                assert topic == benchmark_topic("riverside", "footfall", window_s, doc["window"]["start"])
                published[doc["window"]["start"]] = doc
        assert expected <= set(published)
        assert expected & district_benchmarks(agents[0])  # the shop got benchmarks of its own length

        # Alerts: each shop's real windows are far below last week's, in its own windows.
        for shop in SHOPS:
            low = [a for a in alerts(shop) if a["kind"] == "footfall_low"]
            assert low and {a["window"]["seconds"] for a in low} == {window_s}
        assert {a["window"]["start"] for a in alerts("shop-a") if a["kind"] == "footfall_low"} == {
            iso_seconds(s) for s in day
        }
        assert not [a for shop in ("shop-a", "shop-b") for a in alerts(shop) if a["kind"] == "silent"]

        # The dashboard shows this length: district section, the shop's own series against the band, freshness.
        district = json.loads(http_get(f"http://127.0.0.1:{dash}/api/district", dashboard_cookie(str(db_path)))[1])
        (section,) = district["windows"]
        assert (section["window_seconds"], section["window"], section["shops"], section["reason"]) == (
            window_s,
            name,
            3,
            None,
        )
        assert district["window_seconds"] == window_s
        assert expected <= {iso_seconds(b["window_start_s"]) for b in section["benchmarks"]}
        shop = json.loads(http_get(f"http://127.0.0.1:{dash}/api/shop/shop-a", dashboard_cookie(str(db_path)))[1])
        assert shop["window"] == name and shop["reason"] is None
        banded = {f["window"] for f in shop["footfall"] if f["district"] is not None}
        assert expected <= banded
        kinds = {a["kind"] for a in shop["alerts"]}  # and "offline" once its agent said goodbye
        assert "footfall_low" in kinds and "silent" not in kinds
        status = json.loads(http_get(f"http://127.0.0.1:{dash}/api/status", dashboard_cookie(str(db_path)))[1])
        assert {s["store"]: (s["window"], s["silent"]) for s in status["stores"]} == {
            "shop-a": (name, False),
            "shop-b": (name, False),
            "shop-c": (name, True),
        }
        page = http_get(f"http://127.0.0.1:{dash}/", dashboard_cookie(str(db_path)))[1].decode()
        assert f"{name} windows (3 shop(s))" in page and 'class="median"' in page
        shop_page = http_get(f"http://127.0.0.1:{dash}/shop/shop-a", dashboard_cookie(str(db_path)))[1].decode()
        assert f"footfall per {name} window" in shop_page and 'class="own"' in shop_page
        assert hub.alive()
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
        if hub:
            hub.stop()
        broker.stop()
