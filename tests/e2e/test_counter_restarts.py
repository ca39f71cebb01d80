"""End to end: a Terabee without counter reset, the agent process restarted ten times during a simulated
day, counts each crossing once: the store holds exactly the simulator's ground truth after the baseline.

The day simulated is the shop's open day, 08:00 to 17:00 (the restarts fall between 08:30 and 15:42): the
night before and after carries no crossing and only cost two minutes of real time. `make torture` restarts
thirty times, on a slower clock so each run still has its seconds to start, read and count.
"""

from __future__ import annotations

import datetime as dt
import re
import signal
import time
from pathlib import Path

import pytest

from agent.clock import NS_PER_S
from agent.demo import DAY_START
from agent.demo.local_broker import LocalBroker
from tests import torture
from tests.e2e.harness import DOORS, Shop, wait_until

RESTARTS = torture.count(10, 30)  # issue 13: "Terabee without reset across 10 restarts"
OPEN_FROM, OPEN_HOURS = 8, 9  # the simulated day: 08:00 to 17:00
FIRST_SIGHT = re.compile(r"(\w+)_door: no stored baseline for \S+; its counters \((\d+) in, (\d+) out\)")


def stored(shop: Shop, door: str) -> tuple[int, int]:
    rows = shop.query("SELECT coalesce(sum(entries), 0), coalesce(sum(exits), 0) FROM events WHERE door = ?", door)
    return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)


@pytest.mark.slow
@pytest.mark.torture
def test_ten_agent_restarts_without_reset_count_exactly_the_truth(tmp_path: Path, broker: LocalBroker) -> None:
    # 48 simulated minutes (4 real seconds at x720) between restarts at the minimum count.
    factor = 720 * 10 / RESTARTS
    start = DAY_START + dt.timedelta(hours=OPEN_FROM)
    shop = Shop(
        tmp_path / "shop", broker.port, factor=factor, hours=OPEN_HOURS, start=start, sim_extra=("--sensor-id",)
    )
    config = shop.config_path.read_text()
    shop.config_path.write_text(
        config.replace('kind = "terabee"\n', 'kind = "terabee"\nreset_counters_on_start = false\n')
    )
    day_ns = int(DAY_START.timestamp()) * NS_PER_S  # midnight: the restarts' times are times of day
    try:
        shop.start_agent()
        shop.start_sim()
        for k in range(RESTARTS):  # a clean stop and start every 48 minutes (at ten) from 08:30, while open
            at_ns = day_ns + int((8.5 + 8.0 * k / RESTARTS) * 3600) * NS_PER_S
            time.sleep(max(0.0, (shop.clock.real_ns_at(at_ns) - time.time_ns()) / 1e9))  # the day runs on
            shop.kill_agent(signal.SIGTERM)
            shop.start_agent()
        # Crossings the device counted while the agent was down reach it with the next frame: there must be one.
        assert shop.clock.wall_ns() < day_ns + 16.5 * 3600 * NS_PER_S, "the restarts ran too late in the day"
        truth = shop.wait_sim(timeout=180)
        baselines = {door: (int(i), int(o)) for door, i, o in FIRST_SIGHT.findall(shop.agent_log_full())}
        assert len(FIRST_SIGHT.findall(shop.agent_log_full())) == len(DOORS), "one first sight per sensor, ever"
        for door in DOORS:
            entries = sum(h["entries"] for h in truth["doors"][door].values()) - baselines[door][0]
            exits = sum(h["exits"] for h in truth["doors"][door].values()) - baselines[door][1]
            assert entries + exits > 100
            wait_until(lambda d=door, e=(entries, exits): stored(shop, d) == e, 30, f"{door}: {(entries, exits)}",
                       lambda d=door: f"stored {stored(shop, d)}\n{shop.agent_log()}")  # fmt: skip
    finally:
        shop.stop()
