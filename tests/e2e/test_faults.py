"""Fault injection on real parts: SIGKILL torture, a week-long broker outage, unplugged cables, clock jumps."""

from __future__ import annotations

import datetime as dt
import json
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from agent.clock import NS_PER_S, AcceleratedClock
from agent.demo import DAY_START, simulator_command
from agent.demo.local_broker import LocalBroker, free_port
from agent.driver_api.kit import RecordingSink
from agent.privacy.sampler import laplace_tail_bound
from drivers.terabee.driver import TerabeeDriver
from firmware_sim.terabee import TerabeeSimulator
from firmware_sim.traffic import ENTRY, EXIT, Crossing
from tests import torture
from tests.e2e.harness import DOORS, Shop, wait_until
from tests.mqtt_watch import Subscriber

STORE_TOPICS = "coop/v1/riverside/demo-store/t1/#"
SIGKILLS = torture.count(50, 200)  # issue 4: "at least 50 SIGKILLs at seeded random points"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def dedupe(summaries: list[dict]) -> dict[str, dict]:  # type: ignore[type-arg]
    """msg_id -> payload, asserting that every repeat is byte-for-byte the same summary."""
    seen: dict[str, dict] = {}  # type: ignore[type-arg]
    for message in summaries:
        previous = seen.setdefault(message["msg_id"], message)
        assert previous == message, f"{message['msg_id']} was sent twice with different values"
    return seen


@pytest.mark.slow
@pytest.mark.torture
def test_fifty_sigkills_lose_no_accepted_event_and_release_nothing_twice(tmp_path: Path, broker: LocalBroker) -> None:
    rng = random.Random(20261122)  # seeded kill points
    # An hour a second; four simulated hours per kill leave the simulator running past the last one.
    shop = Shop(tmp_path / "shop", broker.port, factor=3600, hours=4 * SIGKILLS, lead_s=600)
    sub = Subscriber(broker.port, STORE_TOPICS)
    accepted: set[int] = set()
    try:
        shop.start_sim()
        for kill in range(SIGKILLS):
            shop.start_agent()
            # Wait until this run is connected (it then ingests, releases a window a second and
            # publishes), then kill it at a seeded random point of that work.
            wait_until(
                lambda k=kill: int(shop.scalar("SELECT value FROM agent_state WHERE key = 'mqtt_connections'")) > k,
                60,
                f"run {kill + 1} to connect",
                shop.agent_log,
            )
            time.sleep(rng.uniform(0.0, 1.5))
            shop.kill_agent(signal.SIGKILL)
            after = {i for (i,) in shop.query("SELECT id FROM events")}
            assert accepted <= after, "an event committed before a SIGKILL vanished"
            accepted = after
        assert len(accepted) > 100, "the torture ran on real traffic"
        shop.start_agent()
        last_accepted = max(accepted)

        def accepted_all_released() -> bool:
            next_open = int(shop.scalar("SELECT value FROM agent_state WHERE key = 'next_window_start_ns'"))
            pending = shop.scalar(
                "SELECT count(*) FROM events WHERE id <= ? AND (window_ns IS NULL OR window_ns >= ?)",
                last_accepted,
                next_open,
            )
            return next_open > 0 and pending == 0

        wait_until(accepted_all_released, 60, "the windows of every accepted event to be released", shop.agent_log)
        # Let the last run drain: every summary released so far reaches the subscriber.
        wait_until(
            lambda: shop.scalar("SELECT count(*) FROM outbox WHERE delivered_wall_ns IS NULL") == 0,
            60,
            "the outbox to drain",
            shop.agent_log,
        )
        snapshot = {m: (s, json.loads(p)) for m, s, p in shop.query("SELECT msg_id, seq, payload FROM outbox")}
        wait_until(lambda: set(snapshot) <= {m["msg_id"] for m in sub.summaries()}, 30, "every id at the subscriber")
        shop.kill_agent(signal.SIGTERM)
        final_events = shop.query("SELECT id, door, entries, exits, window_ns FROM events")
        ledger = shop.query("SELECT window_start_ns, stream FROM release_ledger")
        next_open = int(shop.query("SELECT value FROM agent_state WHERE key = 'next_window_start_ns'")[0][0])
    finally:
        shop.stop()
        sub.close()
    truth = json.loads(shop.truth_path.read_text()) if shop.truth_path.exists() else None

    # Every accepted event is still there and lies in a window that was released exactly once.
    assert accepted <= {row[0] for row in final_events}
    assert len(accepted) > 100, "the torture ran on real traffic"
    assert all(row[4] is not None and row[4] < next_open for row in final_events if row[0] in accepted)
    assert len(ledger) == len(set(ledger)), "a (window, stream) was released twice"
    windows = sorted({w for w, _s in ledger})
    assert windows == list(range(windows[0], windows[-1] + 3600 * NS_PER_S, 3600 * NS_PER_S)), "no window skipped"
    # Nothing was double counted across restarts: the device's counters were reset at each (re)start.
    if truth is not None:
        for door in DOORS:
            true_entries = sum(h["entries"] for h in truth["doors"][door].values())
            assert sum(r[2] for r in final_events if r[1] == door) <= true_entries
    # The subscriber saw every id at least once; after de-duplication exactly once, with no gap in seq.
    received = dedupe(sub.summaries())
    assert set(snapshot) <= set(received)
    seqs = sorted(received[m]["seq"] for m in snapshot)
    assert seqs == list(range(1, len(seqs) + 1))
    for msg_id, (_seq, payload) in snapshot.items():
        assert received[msg_id] == payload


@pytest.mark.slow
def test_broker_outage_of_a_week_drains_oldest_first_with_flat_memory(tmp_path: Path) -> None:
    port = free_port()
    broker = LocalBroker(tmp_path / "broker", port=port, persistent=True).start()
    shop = Shop(tmp_path / "shop", port, factor=36_000, hours=1, lead_s=600)  # ten simulated hours a second
    sub = Subscriber(port, STORE_TOPICS, client_id="outage-watch", persistent=True)
    rss = {}
    try:
        shop.start_agent()
        for label, outage_hours in (("short", 24), ("long", 7 * 24)):
            wait_until(
                lambda: (
                    shop.scalar("SELECT count(*) FROM outbox WHERE delivered_wall_ns IS NULL") == 0
                    and len(shop.query("SELECT 1 FROM outbox")) > 0
                ),
                30,
                "a connected, drained agent",
                shop.agent_log,
            )
            broker.stop()
            before = shop.scalar("SELECT count(*) FROM outbox")
            time.sleep(outage_hours * 3600 / shop.clock.factor)
            assert shop.scalar("SELECT count(*) FROM outbox") - before >= 3 * outage_hours // 2, (
                "windows kept being released during the outage"
            )
            assert shop.agent is not None
            rss[label] = rss_mb(shop.agent.pid)
            broker = LocalBroker(tmp_path / "broker", port=port, persistent=True).start()
        wait_until(
            lambda: shop.scalar("SELECT count(*) FROM outbox WHERE delivered_wall_ns IS NULL") == 0,
            60,
            "the backlog to drain",
            shop.agent_log,
        )
        expected = {m for (m,) in shop.query("SELECT msg_id FROM outbox")}
        wait_until(lambda: expected <= {m["msg_id"] for m in sub.summaries()}, 30, "every window at the subscriber")
    finally:
        shop.stop()
        sub.close()
        broker.stop()
    received = sub.summaries()
    assert expected <= {m["msg_id"] for m in received}
    first_seen: dict[str, int] = {}
    for m in received:
        first_seen.setdefault(m["msg_id"], m["seq"])
    arrival = list(first_seen.values())
    assert arrival == sorted(arrival), "the backlog drained oldest first"
    # Memory does not grow with the outage: a week-long outage costs no more than a day-long one.
    assert rss["long"] < rss["short"] + 8, rss


def test_twenty_unplugs_lose_no_crossing(tmp_path: Path) -> None:
    start_ns = int(DAY_START.timestamp()) * NS_PER_S
    clock = AcceleratedClock.starting_now(start_ns, 600.0)  # ten simulated minutes a real second
    crossings = [
        Crossing(start_ns + int((0.5 + i * 0.25) * 600 * NS_PER_S), "front", ENTRY if i % 3 else EXIT)
        for i in range(160)
    ]  # four crossings a real second for 40 s
    link = tmp_path / "terabee-front"
    sim = TerabeeSimulator({"front": link}, crossings, clock, seed=3)
    driver = TerabeeDriver.from_options("front_door", {"port": str(link), "door": "front"})
    driver.backoff_initial_s, driver.backoff_max_s = 0.05, 0.2
    sink = RecordingSink()
    sim.start()
    driver.start(sink)
    try:
        for n in range(20):
            wait_until(lambda: driver.health()["connected"], 10, f"reconnect {n}")
            time.sleep(0.5)
            sim.unplug("front")
            time.sleep(0.3)
            sim.replug("front")
            wait_until(
                lambda n=n: driver.health()["reconnects"] >= n + 1 and driver.health()["connected"],
                10,
                f"recovery {n + 1}",
            )
        wait_until(sim.done, 60, "the simulator to replay every crossing")
        # The device keeps counting while unplugged; its cumulative counters carry those crossings over.
        wait_until(
            lambda: sum(r.entries + r.exits for r in sink.snapshot()[0]) == len(crossings),
            10,
            "every crossing at the sink",
        )
    finally:
        driver.stop()
        sim.stop()
    readings = sink.snapshot()[0]
    assert sum(r.entries for r in readings) == sum(1 for c in crossings if c.direction == ENTRY)
    assert sum(r.exits for r in readings) == sum(1 for c in crossings if c.direction == EXIT)
    assert driver.health()["reconnects"] >= 20


@pytest.mark.slow
def test_unsynced_start_then_three_day_jump_releases_correct_windows(tmp_path: Path, broker: LocalBroker) -> None:
    offset_file, sync_file = tmp_path / "clock-offset", tmp_path / "clock-synced"
    offset_file.write_text(str(-3 * 86400 * NS_PER_S))  # the box restored a time three days old
    # Seven simulated hours from 07:00 at x720 (an hour in 5 s): slow enough that a stalled process on a
    # shared machine cannot move readings across an hour boundary (the traffic keeps 120 s away from it).
    start = DAY_START + dt.timedelta(hours=7)
    shop = Shop(tmp_path / "shop", broker.port, factor=720, hours=7, lead_s=300, start=start)
    shop.clock = AcceleratedClock(
        shop.clock.origin_ns,
        shop.clock.factor,
        shop.clock.anchor_ns,
        offset_file=str(offset_file),
        sync_file=str(sync_file),
    )
    sim_env = dict(shop.env)  # the simulator lives in true time
    shop.env = {**shop.env, **shop.clock.env()}
    sub = Subscriber(broker.port, STORE_TOPICS)
    try:
        shop.start_agent()
        command = simulator_command(shop.links, start, shop.hours, shop.seed, shop.truth_path, shop.clock.factor)
        shop.sim = subprocess.Popen(command, env=sim_env, stdout=subprocess.DEVNULL)
        wait_until(
            lambda: shop.scalar("SELECT count(*) FROM events WHERE synced = 0") > 20,
            30,
            "readings stamped on the unsynchronised clock",
            shop.agent_log,
        )
        assert shop.query("SELECT count(*) FROM release_ledger") == [(0,)], "nothing released while unsynced"
        time.sleep(3)
        offset_file.write_text("0")  # NTP: the clock jumps three days forward ...
        sync_file.touch()  # ... and says it is synchronised
        truth = shop.wait_sim(60)
        end_ns = shop.day_end_ns
        wait_until(
            lambda: (
                shop.query("SELECT 1 FROM release_ledger WHERE window_end_ns >= ?", end_ns) != []
                and shop.scalar("SELECT count(*) FROM outbox WHERE delivered_wall_ns IS NULL") == 0
            ),
            60,
            "the day's windows",
            shop.agent_log,
        )
        expected = {m for (m,) in shop.query("SELECT msg_id FROM outbox")}
        wait_until(lambda: expected <= {m["msg_id"] for m in sub.summaries()}, 20, "every summary")
        counters = dict(shop.query("SELECT name, value FROM counters"))
        raw_total = shop.query("SELECT sum(entries), sum(exits) FROM events")[0]
    finally:
        shop.stop()
        sub.close()
    summaries = list(dedupe(sub.summaries()).values())
    assert counters.get("events_rebased", 0) > 20
    day_start_ns = int(DAY_START.timestamp()) * NS_PER_S
    starts = {m["window"]["start"] for m in summaries}
    assert all(s.startswith("2026-11-16") for s in starts), f"a window was named by the stale clock: {sorted(starts)}"
    true_entries = sum(h["entries"] for d in truth["doors"].values() for h in d.values())
    true_exits = sum(h["exits"] for d in truth["doors"].values() for h in d.values())
    assert raw_total == (true_entries, true_exits), "nothing lost, nothing counted twice"
    bound = laplace_tail_bound(2, 1, 2 * len(summaries), 1e-6)  # P(a false failure) <= 1e-6
    for m in summaries:
        doors = DOORS if "door" not in m else (m["door"],)
        for field in ("entries", "exits"):
            true = sum(truth["doors"][d].get(m["window"]["start"], {}).get(field, 0) for d in doors)
            assert abs(m["values"][field] - true) < bound, (m, true)
    assert min(starts) >= time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(day_start_ns / 1e9))
