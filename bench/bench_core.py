"""Ingest and aggregation figures; prints one flat JSON object (the agent's footprint: bench_footprint.py).

Usage: .venv/bin/python bench/bench_core.py [--events N]

Every speed is paired with a baseline measured in the same run (these machines are shared and
noisy, so ratios are what to compare across runs):
- ingest: the batched writer thread against one bare executemany of the same rows, and against the
  store's own 100-rows-a-statement insert of them (the writer's machinery alone);
- aggregation: the numba kernel against the NumPy and pure-Python versions on the same events.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.clock import SystemClock
from agent.driver_api import DoorCount
from agent.kernels.footfall import count_footfall
from agent.pipeline.ingest import IngestWriter
from agent.store import Store, raw_events
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
    # The baseline inserts the very rows the writer stored (its boot id, its nanosecond stamps), read back:
    # "the same rows", so the ratio is the writer's own overhead, not a difference in what is written.
    rows = (
        store.conn()
        .execute("SELECT boot_id, mono_ns, wall_ns, synced, driver, door, entries, exits FROM events ORDER BY id")
        .fetchall()
    )
    assert len(rows) == n, f"the writer stored {len(rows)} of {n} readings"
    raw = Store(workdir / "raw.db")
    start = time.perf_counter()
    with raw.transaction() as conn:
        conn.executemany(
            "INSERT INTO events (boot_id, mono_ns, wall_ns, synced, driver, door, entries, exits)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    bare = n / (time.perf_counter() - start)
    # A second baseline, reported next to the first and changing nothing in it: the same rows through the
    # store's own insert (100 rows a statement, as the writer inserts), in one transaction. Against it the
    # ratio is the writer's machinery alone (stamping, queue, thread hand-over, a commit per batch).
    store_insert = Store(workdir / "store_insert.db")
    start = time.perf_counter()
    with store_insert.transaction() as conn:
        raw_events.insert_door_counts(conn, rows)
    bare_store = n / (time.perf_counter() - start)
    return {
        "ingest.events_per_s": round(batched),
        "ingest.bare_executemany_events_per_s": round(bare),
        "ingest.ratio_vs_bare_executemany": round(batched / bare, 3),
        "ingest.bare_store_insert_events_per_s": round(bare_store),
        "ingest.ratio_vs_bare_store_insert": round(batched / bare_store, 3),
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--ingest-events", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures: dict[str, Any] = {}
        figures.update(bench_ingest(args.ingest_events, Path(tmp)))
        figures.update(bench_aggregate(args.events))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
