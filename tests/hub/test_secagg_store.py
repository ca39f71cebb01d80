"""The hub's secure-aggregation storage on real SQLite and PostgreSQL databases: the roster file refused
entry by entry, rounds queued and taken oldest first, released totals stored one row per cell with their
noise level, and the operator's `secagg-plan` command."""

from __future__ import annotations

import base64
import json
from fractions import Fraction
from pathlib import Path

import pytest

from agent.coop.secagg.primitives import IdentityKey
from hub import secagg_store
from hub.cli import main as hub_main
from hub.db import Database
from hub.errors import HubConfigError
from tests.hub.conftest import write_hub_config


def roster_file(path: Path, members: dict[str, str], coop: str = "riverside") -> Path:
    path.write_text(json.dumps({"coop": coop, "members": members}))
    return path


def key() -> str:
    return base64.b64encode(IdentityKey().public_bytes).decode()


def test_the_roster_file_is_read_sorted_and_its_digest_is_stable(tmp_path: Path) -> None:
    members = {"shop-b": key(), "shop-a": key()}
    one = secagg_store.load_roster(roster_file(tmp_path / "r.json", members), "riverside")
    two = secagg_store.load_roster(roster_file(tmp_path / "s.json", dict(reversed(members.items()))), "riverside")
    assert [m.shop_id for m in one.members] == ["shop-a", "shop-b"] and one.digest() == two.digest()


@pytest.mark.parametrize(
    ("members", "coop", "where"),
    [
        ({"shop-a": "bm90IGEga2V5", "shop-b": None}, "riverside", "members.shop-a"),  # 9 bytes, not 32
        ({"Shop A": None, "shop-b": None}, "riverside", "members.Shop A"),
        ({"shop-a": None}, "riverside", "members"),  # one shop cannot be aggregated
        ({"shop-a": None, "shop-b": None}, "hillside", "coop"),
    ],
)
def test_a_bad_roster_entry_is_refused_by_name(
    tmp_path: Path, members: dict[str, str | None], coop: str, where: str
) -> None:
    filled = {shop: value or key() for shop, value in members.items()}
    with pytest.raises(HubConfigError) as refused:
        secagg_store.load_roster(roster_file(tmp_path / "r.json", filled, coop), "riverside")
    assert refused.value.key == where


def test_rounds_are_taken_oldest_first_and_totals_stored_per_cell(database: Database) -> None:
    # On SQLite and PostgreSQL (the `database` fixture): another engineer's forecasts read this table on both.
    conn = database.connect()
    try:
        cells = secagg_store.window_cells("footfall_store", "all", ("entries", "exits"), 1_794_823_200, 3600, 2)
        for rid in ("r-1", "r-2"):
            with conn.transaction():
                secagg_store.plan_round(
                    conn, secagg_store.PlannedRound(rid, "footfall_store", cells, 6, 1000, 1, Fraction(1, 48), 0, 0)
                )
        planned = secagg_store.next_planned(conn)
        assert planned is not None and planned.round_id == "r-1" and planned.cells == cells
        with conn.transaction():
            secagg_store.store_totals(conn, "r-1", cells, [10, 4, 12, 7], 40.0, 10)
            secagg_store.finish(conn, "r-1", "released", "summed 10 shops", 10)
        nxt = secagg_store.next_planned(conn)
        assert nxt is not None and nxt.round_id == "r-2"
        rows = conn.query(
            "SELECT stream, key, field, window_start_ns, window_ns, total, noise_variance, shops"
            " FROM secagg_district_totals ORDER BY window_start_ns, field"
        )
        assert rows == [
            ("footfall_store", "all", "entries", 1_794_823_200 * 10**9, 3600 * 10**9, 10, 40.0, 10),
            ("footfall_store", "all", "exits", 1_794_823_200 * 10**9, 3600 * 10**9, 4, 40.0, 10),
            ("footfall_store", "all", "entries", 1_794_826_800 * 10**9, 3600 * 10**9, 12, 40.0, 10),
            ("footfall_store", "all", "exits", 1_794_826_800 * 10**9, 3600 * 10**9, 7, 40.0, 10),
        ]
        assert secagg_store.district_totals(conn, "footfall_store")[0] == (
            1_794_826_800 * 10**9,
            "entries",
            12,
            40.0,
            10,
        )
    finally:
        conn.close()


def test_secagg_plan_queues_a_round_for_the_running_hub(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    roster = roster_file(tmp_path / "roster.json", {"shop-a": key(), "shop-b": key(), "shop-c": key()})
    config = write_hub_config(tmp_path / "hub.toml", 1883, str(tmp_path / "hub.db"))
    config.write_text(config.read_text() + f'\n[secagg]\nroster = "{roster}"\n')
    Database(str(tmp_path / "hub.db")).migrate()
    argv = ["secagg-plan", str(config), "--round-id", "day-1", "--start", "2026-11-16T00:00:00Z"]
    assert hub_main([*argv, "--threshold", "2", "--rho", "1/8"]) == 0
    assert "24 cells" in capsys.readouterr().out
    assert hub_main([*argv, "--threshold", "2", "--rho", "one eighth"]) == 2  # refused with a reason
    conn = Database(str(tmp_path / "hub.db")).connect()
    try:
        assert conn.query("SELECT round_id, status, threshold, rho FROM secagg_rounds") == [
            ("day-1", "planned", 2, "1/8")
        ]
    finally:
        conn.close()
