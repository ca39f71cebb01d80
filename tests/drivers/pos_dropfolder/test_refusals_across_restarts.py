"""Refused drop-folder files stay refused across agent restarts: /health stays degraded with the same
reasons, a file left in place is not read (or logged) again until it changes, and clearing them is
remembered too. Real driver thread, real ingest writer, one real SQLite file reopened at each restart."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest

from drivers.pos_dropfolder import driver as driver_module
from drivers.pos_dropfolder import exportfile
from drivers.pos_dropfolder.driver import PosDropFolderDriver
from drivers.pos_dropfolder.refusal_state import refusals_from, state_for
from tests.drivers.agent_run import agent_running, stored_state, wait_until
from tests.drivers.pos_dropfolder.test_faults import HEADER, drop

NAME = "pos_export"
DEGRADED = "2 export file(s) refused (bad_amount 1, unreadable 1)"


@pytest.fixture
def honour_file_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Root reads a mode-000 file: make the driver's open honour the mode, as it does for the agent's user."""
    if os.geteuid() != 0:
        return
    real_open = os.open

    def honouring_open(path: Any, flags: int, *args: Any) -> int:
        if str(path).endswith(".csv") and os.stat(path).st_mode & 0o444 == 0:  # os.open is global: exports only
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(exportfile.os, "open", honouring_open)


def driver_for(folder: Path) -> PosDropFolderDriver:
    options = {"folder": str(folder), "poll_interval_s": 0.02, "stable_s": 0.05}
    return PosDropFolderDriver.from_options(NAME, options)


def test_refusals_survive_restarts_and_a_file_left_in_place_is_not_retried(
    tmp_path: Path, honour_file_modes: None, caplog: pytest.LogCaptureFixture
) -> None:
    folder, db = tmp_path / "in", tmp_path / "shopkeeper.db"
    folder.mkdir()
    drop(folder, "bad.csv", HEADER + "R1,Tea,1,lots\n")
    locked = drop(folder, "locked.csv", HEADER + "U1,Tea,1,1.00\n")
    locked.chmod(0)
    caplog.set_level(logging.WARNING, logger=driver_module.__name__)
    with agent_running(db, lambda: driver_for(folder)) as first:
        wait_until(lambda: first.health().get("degraded", "").startswith(DEGRADED), "both refusals")
    assert "refused.n" in stored_state(db, NAME)
    logged = sum("locked.csv" in r.getMessage() for r in caplog.records)
    assert logged == 1

    with agent_running(db, lambda: driver_for(folder)) as second:
        wait_until(lambda: second.health().get("degraded", "").startswith(DEGRADED), "the refusals after a restart")
        drop(folder, "good.csv", HEADER + "G1,Tea,1,1.50\n")  # later files keep flowing, many polls pass
        wait_until((folder / "done" / "good.csv").exists, "a later good file")
        health = second.health()
        assert health["refused"] == {}, "the unchanged file left in place was read again"
        assert health["degraded"].startswith(DEGRADED)
    assert sum("locked.csv" in r.getMessage() for r in caplog.records) == logged, "refused (and logged) twice"
    assert locked.exists() and (folder / "failed" / "bad.csv").exists()

    # The owner deals with both: clears failed/ and fixes the permissions. That is remembered as well.
    for leftover in (folder / "failed").iterdir():
        leftover.unlink()
    locked.chmod(0o644)
    with agent_running(db, lambda: driver_for(folder)) as third:
        wait_until((folder / "done" / "locked.csv").exists, "the fixed file to be stored")
        wait_until(lambda: "degraded" not in third.health(), "health to recover")
    with agent_running(db, lambda: driver_for(folder)) as fourth:
        drop(folder, "later.csv", HEADER + "G2,Tea,1,1.50\n")
        wait_until((folder / "done" / "later.csv").exists, "a file after the last restart")
        assert "degraded" not in fourth.health()


def test_a_long_list_of_refusals_is_saved_within_the_state_limits_newest_kept() -> None:
    refusals = [(f"export-{n:05d}-with-a-long-name.csv", "bad_amount", Path(f"/srv/drop/failed/{n}.csv"), None)
                for n in range(1000)]  # fmt: skip
    state = state_for(refusals)
    assert len(state) <= 16 and all(len(v) <= 1024 for v in state.values())
    back = refusals_from(state.get)
    assert 100 < len(back) < 1000 and back == refusals[-len(back) :]


def test_a_damaged_saved_list_is_logged_and_costs_nothing_else(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    assert refusals_from({"refused.n": "1", "refused.0": "[[1, 2"}.get) == []
    assert "cannot be read" in caplog.text
