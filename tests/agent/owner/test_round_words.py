"""Each secure-aggregation round in the owner's words, from the shop's own records (a real SQLite store):
what left, what the hub could see, and what it cost; and the ledger's text form of a contribution."""

from __future__ import annotations

import json
from pathlib import Path

from agent.ops.status import format_ledger
from agent.owner.contributions import contributions
from agent.owner.localtime import LocalZone
from agent.store import Store
from agent.store import secagg as rounds_sql

START_S = 1_794_909_600  # Tuesday 2026-11-17T10:00:00Z
CELLS = tuple(f"footfall_store|all|entries|{START_S + h * 3600}|3600" for h in range(3))


def store_with(tmp_path: Path, round_id: str, state: str, sent: bool, **finish: object) -> Store:
    store = Store(tmp_path / "shopkeeper.db")
    with store.transaction() as conn:
        rounds_sql.insert_round(
            conn, round_id, b"\0" * 32, "footfall_store", CELLS, 3600 * 10**9, 20, 14, "1/112", "2/7", 1
        )
        if sent:
            rounds_sql.mark_input_sent(conn, round_id, [4, 9, 12], 2)
        if state != "joined":
            rounds_sql.finish_round(
                conn,
                round_id,
                state,
                str(finish.get("reason", "")),
                3,
                finish.get("survivors"),  # type: ignore[arg-type]
                finish.get("included"),
            )  # type: ignore[arg-type]
    return store


def test_a_released_round_says_the_hub_saw_only_the_sum(tmp_path: Path) -> None:
    store = store_with(tmp_path, "r-1", "released", True, survivors=18, included=True, reason="summed 18")
    [row] = contributions(store.conn(), LocalZone("UTC"))
    assert row["text"] == (
        "your Tuesday 17 Nov 10:00–13:00 (footfall) was added to the district total; the hub saw only the sum of"
        " 18 shops"
    )
    assert row["cost"] == "ρ 1/112 per event in each of those windows"


def test_an_aborted_round_after_the_input_says_the_windows_are_spent(tmp_path: Path) -> None:
    store = store_with(tmp_path, "r-2", "aborted", True, reason="5 survivor signatures; threshold 6")
    [row] = contributions(store.conn(), LocalZone("UTC"))
    assert "stopped before anything was revealed" in row["text"] and "never go into another round" in row["text"]


def test_a_refused_round_says_nothing_was_sent_and_costs_nothing(tmp_path: Path) -> None:
    store = store_with(tmp_path, "r-3", "refused", False, reason="windows already entered round(s) ['r-1']")
    [row] = contributions(store.conn(), LocalZone("UTC"))
    assert row["text"].startswith("this box refused a round for your Tuesday") and "nothing of yours" in row["text"]
    assert row["cost"] == "nothing spent"


def test_the_ledger_text_names_a_contribution_without_values(tmp_path: Path) -> None:
    row = {
        "window_start": "2026-11-17T10:00:00Z",
        "window_local": "Tue 17 Nov 2026 11:00",
        "zone": "Europe/Berlin",
        "unit": "door_event",
        "epsilon_window_total": "1",
        "delivery": "sent (masked input)",
        "stream": "secagg:footfall_store",
        "epsilon": "rho=1/112",
        "mechanism": "distributed_discrete_gaussian",
        "values": json.loads('{"round_id": "r-1", "sent": "masked input"}'),
    }
    text = format_ledger([row])
    assert "masked input to round r-1 (the hub sees only the sum)" in text
    assert "Tue 17 Nov 2026 11:00 (2026-11-17T10:00:00Z)" in text and "local time (Europe/Berlin)" in text
