"""Drop-folder figures: a generated 1,000,000-row CSV stored by the real driver, IngestWriter and Store.

Usage: .venv/bin/python bench/bench_dropfolder.py [rows]

The file is stored twice, each time by a child process whose peak RSS (VmHWM from /proc) is its own:
first by the driver, IngestWriter and Store alone (`dropfolder.peak_rss_mb`), then by the whole agent
(`shopkeeper run` with the demo configuration plus the drop folder, its broker away: numba, scheduler and
publisher loaded; `dropfolder.agent_peak_rss_mb`). Baselines in the same run: each process's own peak while
idle, everything started, before the file is dropped. Goal (issue 12): peak at most 150 MB for 1,000,000 rows.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROWS = 1_000_000
LINES_PER_RECEIPT = 3
HEADER = "receipt_id,time,sku,name,category,quantity,unit_price,payment\n"


def write_export(path: Path, rows: int) -> int:
    """A plausible till export: three lines a receipt; returns the number of receipts."""
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER)
        for n in range(rows):
            receipt = n // LINES_PER_RECEIPT
            out.write(f"R{receipt:08d},2026-11-16T10:{receipt % 60:02d}:00Z,SKU{n % 997},Artikel {n % 997},"
                      f"bakery,{1 + n % 3},{n % 17}.{n % 100:02d},card\n")  # fmt: skip
    return (rows + LINES_PER_RECEIPT - 1) // LINES_PER_RECEIPT


def vm_hwm_mb(pid: int) -> float:
    """Peak resident set size of the process so far."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for {pid}")


def child(folder: Path, db_path: Path) -> None:
    """Run the driver into the real store until done/ holds the file; talk to the parent over stdio."""
    from agent.clock import SystemClock
    from agent.pipeline.ingest import IngestWriter
    from agent.store import Store
    from drivers.pos_dropfolder.driver import PosDropFolderDriver

    store = Store(db_path)
    writer = IngestWriter(store, SystemClock())
    writer.start()
    driver = PosDropFolderDriver.from_options("bench", {"folder": str(folder), "poll_interval_s": 0.1,
                                                        "stable_s": 0})  # fmt: skip
    driver.start(writer.sink_for("bench"))
    time.sleep(1.0)  # idle polls: the baseline includes them
    print("ready", flush=True)
    sys.stdin.readline()  # the parent has read the baseline and dropped the file
    start = time.monotonic()
    while not (folder / "done" / "export.csv").exists():
        time.sleep(0.05)
        assert driver.alive() and writer.alive(), "a thread died"
    elapsed = time.monotonic() - start
    baskets = store.conn().execute("SELECT count(*) FROM baskets").fetchone()[0]
    lines = store.conn().execute("SELECT count(*) FROM basket_lines").fetchone()[0]
    print(json.dumps({"seconds": elapsed, "baskets": baskets, "lines": lines, "health": driver.health()}), flush=True)
    sys.stdin.readline()  # the parent has read the peak
    driver.stop()
    writer.stop()


def agent_run(workdir: Path, export: Path, receipts: int) -> dict[str, Any]:
    """The whole agent (`shopkeeper run`, numba, scheduler, publisher with its broker away) storing the file."""
    from agent.demo import write_demo_config
    from agent.demo.local_broker import free_port

    folder = workdir / "agent-in"
    folder.mkdir()
    config = write_demo_config(workdir, free_port(), {"front": workdir / "no-device"})
    with config.open("a", encoding="utf-8") as out:
        out.write(f'\n[drivers.pos_export]\nkind = "pos_dropfolder"\nfolder = "{folder}"\nstable_s = 0\n')
    agent = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", str(config)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (folder / "done").is_dir():  # the driver has looked at its folder: the agent is up
            assert agent.poll() is None and time.monotonic() < deadline, "the agent did not start"
            time.sleep(0.1)
        time.sleep(3.0)  # idle: windows, publisher retries and polls all ran
        baseline = vm_hwm_mb(agent.pid)
        os.replace(export, folder / export.name)
        start = time.monotonic()
        while not (folder / "done" / export.name).exists():
            assert agent.poll() is None, "the agent died"
            time.sleep(0.05)
        elapsed = time.monotonic() - start
        peak = vm_hwm_mb(agent.pid)
    finally:
        agent.terminate()
        agent.wait(60)
    db = sqlite3.connect(workdir / "data" / "shopkeeper.db")
    stored = db.execute("SELECT count(*) FROM baskets").fetchone()[0]
    db.close()
    assert stored == receipts, (stored, receipts)
    return {
        "dropfolder.agent_peak_rss_mb": round(peak, 1),
        "dropfolder.agent_baseline_rss_mb": round(baseline, 1),
        "dropfolder.agent_peak_minus_baseline_mb": round(peak - baseline, 1),
        "dropfolder.agent_rows_per_s": round(receipts * LINES_PER_RECEIPT / elapsed),
    }


def main(rows: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder, staging = Path(tmp) / "in", Path(tmp) / "staging"
        folder.mkdir()
        staging.mkdir()
        export = staging / "export.csv"
        receipts = write_export(export, rows)
        file_mb = export.stat().st_size / 1024 / 1024
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", str(folder), str(Path(tmp) / "bench.db")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        try:
            assert proc.stdout.readline().strip() == "ready"
            baseline = vm_hwm_mb(proc.pid)
            os.replace(export, folder / "export.csv")  # atomic, as a POS should write
            proc.stdin.write("go\n")
            proc.stdin.flush()
            result = json.loads(proc.stdout.readline())
            peak = vm_hwm_mb(proc.pid)
            proc.stdin.write("end\n")
            proc.stdin.flush()
        finally:
            proc.stdin.close()
            proc.wait(60)
        assert (result["baskets"], result["lines"]) == (receipts, rows), result
        write_export(export, rows)
        whole_agent = agent_run(Path(tmp), export, receipts)
    return {
        **whole_agent,
        "dropfolder.rows": rows,
        "dropfolder.file_mb": round(file_mb, 1),
        "dropfolder.peak_rss_mb": round(peak, 1),
        "dropfolder.baseline_rss_mb": round(baseline, 1),
        "dropfolder.peak_minus_baseline_mb": round(peak - baseline, 1),
        "dropfolder.rows_per_s": round(rows / result["seconds"]),
        "dropfolder.baskets_per_s": round(receipts / result["seconds"]),
        "dropfolder.seconds": round(result["seconds"], 1),
    }


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else ROWS)))
