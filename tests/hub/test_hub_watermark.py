"""The hub's per-store watermark: the newest window end it holds of a store, retained on that store's topic."""

from __future__ import annotations

import json
from pathlib import Path

from hub.config import load_hub_config
from hub.contract import hub_validator
from hub.db import Database
from hub.storage import store_batch
from hub.tasks import PeriodicTasks
from tests.hub.test_hub_storage import T0, sale, summary


def test_each_store_gets_its_newest_window_end_over_every_stream_and_only_when_it_moves(
    tmp_path: Path, database: Database
) -> None:
    """On SQLite and PostgreSQL (the `database` fixture)."""
    (tmp_path / "hub.toml").write_text(f'[hub]\ncoop = "riverside"\ndatabase = "{tmp_path / "unused.db"}"\n')
    config = load_hub_config(tmp_path / "hub.toml")
    conn = database.connect()
    published: list[tuple[str, str, bool]] = []
    tasks = PeriodicTasks(config, database, lambda t, p, r: published.append((t, p, r)))
    # s1: footfall up to 02:00-03:00 and a t2 sale in 04:00-05:00 (the newest, whatever its tier); s2 one window.
    store_batch(conn, "w", [summary("s1", 0, 1), summary("s1", 2, 2), sale("s1", "count", "all", 3, 4, 3)])
    store_batch(conn, "w", [summary("s2", 1, 1)])
    tasks.run_once(conn, now=T0 + 6 * 3600)
    marks = {t: (json.loads(p), r) for t, p, r in published if "/watermark/" in t}
    assert set(marks) == {"coop/v1/riverside/_hub/t2/watermark/s1", "coop/v1/riverside/_hub/t2/watermark/s2"}
    s1, retained = marks["coop/v1/riverside/_hub/t2/watermark/s1"]
    assert retained and s1["released_through"] == "2025-11-16T05:00:00Z" and s1["store"] == "s1"
    assert marks["coop/v1/riverside/_hub/t2/watermark/s2"][0]["released_through"] == "2025-11-16T02:00:00Z"
    assert list(hub_validator("watermark.v1.json").iter_errors(s1)) == []
    published.clear()
    store_batch(conn, "w", [summary("s1", 3, 4)])  # an older window arriving late: the watermark stays
    tasks.run_once(conn, now=T0 + 6 * 3600 + 10)
    assert [t for t, _p, _r in published if "/watermark/" in t] == []
    store_batch(conn, "w", [summary("s2", 5, 2)])
    tasks.run_once(conn, now=T0 + 6 * 3600 + 20)
    moved = [json.loads(p) for t, p, _r in published if "/watermark/" in t]
    assert [(m["store"], m["released_through"]) for m in moved] == [("s2", "2025-11-16T06:00:00Z")]
    conn.close()
