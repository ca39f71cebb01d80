"""The page escapes everything it shows and carries the district comparison the hub sent back."""

from __future__ import annotations

import json
import time
from pathlib import Path

from agent.owner import page, sensors
from agent.owner.localtime import LocalZone
from agent.store import Store
from tests.conftest import T0_NS, make_config


def test_driver_text_is_escaped_and_the_district_band_is_shown(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    store = Store(config.db_path)
    hostile = "<script>alert(1)</script>"
    snapshot = {
        "at_ns": T0_NS, "real_ns": time.time_ns(), "stopped": False,
        "drivers": {"front_door": {"kind": "terabee", "doors": ["front"], "unset_secrets": [],
                                   "health": {"connected": False, "running": True, "last_error": hostile}}},
    }  # fmt: skip
    with store.transaction() as conn:
        Store.set_state(conn, sensors.STATE_KEY, json.dumps(snapshot))
        conn.execute("INSERT INTO district_benchmarks VALUES ('footfall', '2025-11-16T00:00:00Z', 7, 10, 20, 30, 0)")
    zone = LocalZone("Europe/Berlin")
    html = page.render(page.gather(store, config, zone, T0_NS), config, zone, "token", signed_in=True).decode()
    assert hostile not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html, "the page runs no script at all"
    assert "2025-11-16T00:00:00Z" in html and "10 / 20 / 30" in html
    assert 'name="csrf" value="token"' in html, "the sign-out form carries the session's CSRF token"
    assert "not connected" in html and "(Europe/Berlin)" in html
