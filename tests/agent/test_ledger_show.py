"""`shopkeeper ledger`: per window in local time (zone named), each stream's epsilon beside the window's total
over all streams, and the delivery state."""

from __future__ import annotations

import json

import pytest

from agent.cli import main
from agent.config import AgentConfig
from agent.pipeline.release import WindowReleaser
from agent.store import Store, outbox
from tests.conftest import ManualClock


def test_ledger_shows_local_windows_the_window_total_and_delivery(
    config: AgentConfig, clock: ManualClock, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "Europe/Amsterdam")
    store = Store(config.db_path)
    releaser = WindowReleaser(config, store, clock)
    clock.advance(2 * 3600 + 121)
    assert releaser.tick() == 2
    first = [int(r[0]) for r in store.conn().execute("SELECT seq FROM outbox WHERE window_start_ns = ?", (clock.now_ns
             - (2 * 3600 + 121) * 10**9,))]  # fmt: skip
    with store.transaction() as conn:
        outbox.accept(conn, first, clock.now_ns)
    store.close()
    assert main(["ledger", str(config.path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("windows in local time (Europe/Amsterdam)")
    # 00:00 UTC is 01:00 in Amsterdam in November; a door event is in both footfall streams: 1/2 + 1/2 = 1.
    assert lines[1] == (
        "Sunday 16 Nov 01:00–02:00 (2025-11-16T00:00:00Z): epsilon 1 per door event in this window, all streams"
    )
    assert lines[2].split()[:4] == ["footfall_door", "epsilon", "1/2", "delivered"]
    assert "2 pending, 0 delivered" in lines[5] and lines[5].split()[:3] == ["footfall_door", "epsilon", "1/2"]
    assert main(["ledger", str(config.path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(r["window_local"], r["epsilon"], r["epsilon_window_total"], r["delivered"]) for r in rows} == {
        ("Sunday 16 Nov 01:00–02:00", "1/2", "1", True),
        ("Sunday 16 Nov 02:00–03:00", "1/2", "1", False),
    }
    assert {r["zone"] for r in rows} == {"Europe/Amsterdam"}


def test_ledger_verify_names_the_watermark(
    config: AgentConfig, clock: ManualClock, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(config.db_path)
    releaser = WindowReleaser(config, store, clock)
    clock.advance(3600 + 121)
    assert releaser.tick() == 1
    store.close()
    assert main(["ledger", "verify", str(config.path)]) == 0
    out = capsys.readouterr().out
    assert "coop watermark: none read yet" in out and "release journal and coop watermark agree" in out
