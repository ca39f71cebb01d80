"""Ingest, aggregation and agent-footprint figures; prints one flat JSON object.

Usage: .venv/bin/python bench/bench_core.py [--events N]

Every speed is paired with a baseline measured in the same run (these machines are shared and
noisy, so ratios are what to compare across runs):
- ingest: the batched writer thread against one bare executemany of the same rows;
- aggregation: the numba kernel against the NumPy and pure-Python versions on the same events;
- footprint: the agent's RSS against a bare Python that imports numpy.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.clock import NS_PER_S, AcceleratedClock, SystemClock
from agent.demo.local_broker import LocalBroker
from agent.driver_api import DoorCount
from agent.kernels.footfall import count_footfall
from agent.pipeline.ingest import IngestWriter
from agent.store import Store
from devtools.footfall_numpy import count_footfall_numpy


def bench_ingest(n: int, workdir: Path) -> dict[str, float]:
    store = Store(workdir / "ingest.db")
    writer = IngestWriter(store, SystemClock())
    writer.start()
    reading = DoorCount("front", 1, 0)
    start = time.perf_counter()
    for _ in range(n):
        writer.submit("bench", reading)
    writer.flush(600)
    batched = n / (time.perf_counter() - start)
    writer.stop()
    raw = Store(workdir / "raw.db")
    rows = [("b", i, i, 1, "bench", "front", 1, 0) for i in range(n)]
    start = time.perf_counter()
    with raw.transaction() as conn:
        conn.executemany(
            "INSERT INTO events (boot_id, mono_ns, wall_ns, synced, driver, door, entries, exits)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    bare = n / (time.perf_counter() - start)
    return {
        "ingest.events_per_s": round(batched),
        "ingest.bare_executemany_events_per_s": round(bare),
        "ingest.ratio_vs_bare_executemany": round(batched / bare, 3),
    }


def python_aggregate(
    window_idx: np.ndarray, door_idx: np.ndarray, entries: np.ndarray, exits: np.ndarray, n_windows: int, n_doors: int
) -> list[list[list[int]]]:
    table = [[[0, 0] for _ in range(n_doors)] for _ in range(n_windows)]
    for w, d, e, x in zip(window_idx.tolist(), door_idx.tolist(), entries.tolist(), exits.tolist(), strict=True):
        if 0 <= w < n_windows and 0 <= d < n_doors:
            table[w][d][0] += e
            table[w][d][1] += x
    return table


def bench_aggregate(n: int) -> dict[str, float]:
    rng = np.random.default_rng(1)
    args = (rng.integers(0, 24, n), rng.integers(0, 4, n), rng.integers(0, 3, n), rng.integers(0, 3, n))
    args = tuple(a.astype(np.int64) for a in args)
    count_footfall(*args[:1], *args[1:], 24, 4)  # warm: load from the numba cache
    figures = {}
    for name, func in (("numba", count_footfall), ("numpy", count_footfall_numpy), ("python", python_aggregate)):
        start = time.perf_counter()
        func(*args, 24, 4)
        figures[f"aggregate.{name}_events_per_s"] = round(n / (time.perf_counter() - start))
    figures["aggregate.numba_vs_python_ratio"] = round(
        figures["aggregate.numba_events_per_s"] / figures["aggregate.python_events_per_s"], 1
    )
    figures["aggregate.numba_vs_numpy_ratio"] = round(
        figures["aggregate.numba_events_per_s"] / figures["aggregate.numpy_events_per_s"], 2
    )
    return figures


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_footprint(workdir: Path) -> dict[str, Any]:
    """Start the demo configuration's agent on a real clock and a live simulator; measure it."""
    from agent.demo import DAY_START, simulator_command, write_demo_config

    with LocalBroker(workdir / "broker") as broker:
        links = {door: workdir / "dev" / f"terabee-{door}" for door in ("front", "back")}
        (workdir / "dev").mkdir(parents=True, exist_ok=True)
        config = write_demo_config(workdir, broker.port, links)
        # Real-time clock for the agent (factor 1), starting at 12:00 so the simulated shop is busy;
        # the simulator runs fast (x600) so the first reading comes within a second.
        noon = int(DAY_START.timestamp()) * NS_PER_S + 12 * 3600 * NS_PER_S
        sim_clock = AcceleratedClock.starting_now(noon, 600.0)
        sim = subprocess.Popen(
            simulator_command(links, DAY_START, 24, 3, workdir / "truth.json", 600.0),
            env={**os.environ, **sim_clock.env()},
            stdout=subprocess.DEVNULL,
        )
        agent_clock = AcceleratedClock.starting_now(noon, 1.0)
        start = time.perf_counter()
        agent = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "run", str(config)],
            env={**os.environ, **agent_clock.env()},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        db = workdir / "data" / "shopkeeper.db"
        start_s = float("nan")
        import sqlite3

        while time.perf_counter() - start < 60:
            if db.exists():
                try:
                    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
                    if conn.execute("SELECT count(*) FROM events").fetchone()[0] > 0:
                        start_s = time.perf_counter() - start
                        conn.close()
                        break
                    conn.close()
                except sqlite3.OperationalError:
                    pass
            time.sleep(0.01)
        sim.terminate()
        sim.wait(30)
        time.sleep(5)  # settle: drivers reconnect-waiting, scheduler ticking, publisher idle
        cpu0, t0 = cpu_seconds(agent.pid), time.perf_counter()
        time.sleep(20)
        idle_pct = 100 * (cpu_seconds(agent.pid) - cpu0) / (time.perf_counter() - t0)
        agent_rss = rss_mb(agent.pid)
        agent.terminate()
        agent.wait(30)
    baseline = subprocess.Popen([sys.executable, "-c", "import numpy, time; time.sleep(3)"])
    time.sleep(1.5)
    base_rss = rss_mb(baseline.pid)
    baseline.wait()
    return {
        "agent.rss_mb": round(agent_rss, 1),
        "agent.start_s": round(start_s, 2),
        "agent.cpu_pct_idle": round(idle_pct, 2),
        "agent.python_numpy_rss_mb": round(base_rss, 1),
        "agent.rss_ratio_vs_python_numpy": round(agent_rss / base_rss, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--ingest-events", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures: dict[str, Any] = {}
        figures.update(bench_ingest(args.ingest_events, Path(tmp)))
        figures.update(bench_aggregate(args.events))
        figures.update(bench_footprint(Path(tmp) / "footprint"))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
