"""Hub ingest throughput: 500 simulated shops, one day each (500 * 24 * 2 doors summaries).

Synthetic schema-valid summaries are published at QoS 1 as fast as a local Mosquitto takes them;
the figure is stored messages per second from the first to the last stored (hub receive stamps).
One worker writes to SQLite; then, when Debian's PostgreSQL server is installed, one worker and two
workers on a shared subscription each write to a fresh database of the SAME PostgreSQL server (fsync
on), so the two-worker rate has its same-run one-worker baseline. Periodic tasks (benchmarks,
warnings) are off: this measures ingest. Prints ONE flat JSON object.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.demo.local_broker import LocalBroker
from devtools.loadgen import FastPublisher, shop_days
from devtools.local_postgres import LocalPostgres, postgres_bin_dir
from hub.db import Database

SHOPS, HOURS = 500, 24
DAY = 1_763_251_200
REPO = Path(__file__).resolve().parents[1]


def start_worker(workdir: Path, port: int, database: str, name: str, group: str) -> subprocess.Popen[bytes]:
    cfg = workdir / f"{name}.toml"
    cfg.write_text(
        f'[hub]\ncoop = "riverside"\ndatabase = "{database}"\ndashboard = ""\ntasks = false\nworker_id = "{name}"\n'
        f'worker_group = "{group}"\nlog_level = "warning"\n[mqtt]\nport = {port}\n'
    )
    log = (workdir / f"{name}.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "hub", "run", str(cfg)], cwd=REPO, stdout=log, stderr=log)
    return proc


def run(database: str, workers: int, workdir: Path) -> float:
    Database(database).migrate()
    with LocalBroker(workdir / "broker") as broker:
        procs = [
            start_worker(workdir, broker.port, database, f"w{i}", "bench" if workers > 1 else "")
            for i in range(workers)
        ]
        try:
            time.sleep(3.0)  # connect and subscribe
            messages = list(shop_days("riverside", SHOPS, DAY, hours=HOURS))
            publisher = FastPublisher(broker.port, inflight=1000)
            publisher.publish_all(messages, timeout=600)
            publisher.close()
            db = Database(database)
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                conn = db.connect()
                n, first, last = conn.query("SELECT COUNT(*), MIN(received_at), MAX(received_at) FROM summaries")[0]
                conn.close()
                if n == len(messages):
                    return len(messages) / max(float(last) - float(first), 1e-6)
                time.sleep(0.2)
            raise RuntimeError(f"only {n} of {len(messages)} stored")
        finally:
            for p in procs:
                p.terminate()
                p.wait(15)


def fresh_database(dsn: str, name: str) -> str:
    """An empty database on the server of `dsn`; its DSN (one server, so both runs share its disk and settings)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return dsn.rsplit("/", 1)[0] + "/" + name


def main() -> None:
    result: dict[str, object] = {"hub.messages": SHOPS * HOURS * 2}
    with tempfile.TemporaryDirectory(prefix="bench-hub-") as tmp:
        result["hub.msgs_per_s"] = round(run(str(Path(tmp) / "one" / "hub.db"), 1, Path(tmp) / "one"), 1)
        result["hub.msgs_per_s.database"] = "sqlite (WAL, synchronous=FULL)"
        if postgres_bin_dir() is not None:
            with LocalPostgres(durable=True) as pg:
                one = run(fresh_database(pg.dsn, "hub_one"), 1, Path(tmp) / "pg-one")
                two = run(fresh_database(pg.dsn, "hub_two"), 2, Path(tmp) / "pg-two")
                result["hub.pg.msgs_per_s_1worker"] = round(one, 1)
                result["hub.pg.msgs_per_s_2workers"] = round(two, 1)
                result["hub.pg.ratio_2workers_vs_1worker"] = round(two / one, 2)
                result["hub.msgs_per_s_2workers"] = round(two, 1)
                result["hub.msgs_per_s_2workers.database"] = "postgresql (fsync on), same server as 1worker"
        else:
            result["hub.msgs_per_s_2workers"] = round(run(str(Path(tmp) / "two" / "hub.db"), 2, Path(tmp) / "two"), 1)
            result["hub.msgs_per_s_2workers.database"] = "sqlite (postgresql not installed)"
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
