"""Driver state (a counter baseline): committed with its readings, in order, durable, small, local."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.driver_api import DoorCount, DriverError
from agent.driver_api.contract import MAX_STATE_VALUE
from agent.driver_api.kit import RecordingSink
from agent.pipeline import ingest
from agent.pipeline.ingest import IngestWriter
from agent.store import Store, driver_state
from tests.conftest import ManualClock

REPO = Path(__file__).parents[2]


@pytest.fixture
def writer(tmp_path: Path, clock: ManualClock) -> Iterator[IngestWriter]:
    store = Store(tmp_path / "agent.db")
    writer = IngestWriter(store, clock)
    writer.start()
    yield writer
    writer.stop()
    store.close()


def door_totals(db: Path) -> tuple[int, int, int]:
    with sqlite3.connect(db) as conn:
        rows, entries, exits = conn.execute("SELECT count(*), sum(entries), sum(exits) FROM events").fetchone()
    return rows, entries or 0, exits or 0


def stored_state(db: Path) -> dict[tuple[str, str], str]:
    with sqlite3.connect(db) as conn:
        return {(d, k): v for d, k, v in conn.execute("SELECT driver, key, value FROM driver_state")}


def test_state_is_committed_with_its_reading(writer: IngestWriter) -> None:
    sink = writer.sink_for("front_door")
    sink.emit(DoorCount("front", 3, 1), {"counters": "3,1"})
    assert writer.flush()
    assert door_totals(writer.store.path) == (1, 3, 1)
    assert stored_state(writer.store.path) == {("front_door", "counters"): "3,1"}


def test_load_state_sees_everything_emitted_before_it(writer: IngestWriter) -> None:
    sink = writer.sink_for("front_door")
    for n in range(1, 50):
        sink.emit(DoorCount("front", 1, 0), {"counters": f"{n},0"})
    assert sink.load_state("front_door", "counters") == "49,0"  # no explicit flush: load_state commits first
    assert sink.load_state("front_door", "other") is None


def test_state_without_a_reading_is_saved_in_emission_order(writer: IngestWriter) -> None:
    sink, other = writer.sink_for("front_door"), writer.sink_for("side_door")
    sink.save_state("front_door", {"counters": "1,0"})
    sink.emit(DoorCount("front", 1, 0), {"counters": "2,0"})
    sink.save_state("front_door", {"counters": "0,0"})  # the device reset: a baseline, no crossing
    other.save_state("side_door", {"counters": "7,7"})
    assert sink.load_state("front_door", "counters") == "0,0"
    assert other.load_state("side_door", "counters") == "7,7"
    assert door_totals(writer.store.path) == (1, 1, 0)
    assert writer.stats()["accepted"] == 1  # a state save is not a reading


def test_a_refused_reading_takes_its_state_along(writer: IngestWriter) -> None:
    sink = writer.sink_for("front_door")
    sink.emit(DoorCount("front", 1, 0), {"counters": "1,0"})
    sink.emit(DoorCount("front", -5, 0), {"counters": "9,0"})  # no count: refused, and so is its baseline
    sink.emit(DoorCount("front", 1, 0), {"counters": "x" * (MAX_STATE_VALUE + 1)})  # a blob is not state
    assert sink.load_state("front_door", "counters") == "1,0"
    assert door_totals(writer.store.path) == (1, 1, 0)
    assert sum(writer.stats()["refused"].values()) == 2


def test_state_survives_a_reopened_store(tmp_path: Path, clock: ManualClock) -> None:
    store = Store(tmp_path / "agent.db")
    writer = IngestWriter(store, clock)
    writer.start()
    writer.sink_for("front_door").emit(DoorCount("front", 2, 2), {"counters:5e000000": "2,2"})
    writer.stop()
    store.close()
    again = Store(tmp_path / "agent.db")
    assert driver_state.load_all(again.conn(), "front_door") == {"counters:5e000000": "2,2"}
    again.close()


def test_load_state_raises_a_driver_error_while_the_store_cannot_answer(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest, "LOAD_STATE_WAIT_S", 0.05)
    store = Store(tmp_path / "agent.db")
    stalled = IngestWriter(store, clock)  # never started: nothing emitted before can be committed
    sink = stalled.sink_for("front_door")
    sink.emit(DoorCount("front", 1, 0), {"counters": "1,0"})
    with pytest.raises(DriverError, match="has not committed earlier readings"):
        sink.load_state("front_door", "counters")
    store.close()


CRASH_SCRIPT = textwrap.dedent(
    """
    import contextlib, os, signal, sys, time
    from pathlib import Path
    from agent.driver_api import DoorCount
    from agent.pipeline.ingest import IngestWriter
    from agent.store import Store

    class Clock:
        def wall_ns(self): return time.time_ns()
        def monotonic_ns(self): return time.monotonic_ns()
        def synced(self): return True
        def real_seconds(self, s): return s

    store = Store(Path(sys.argv[1]))
    crash = [False]
    plain = store.transaction

    @contextlib.contextmanager
    def dies_before_commit():
        with plain() as conn:
            yield conn
            if crash[0]:  # every statement of the batch ran; the process dies before COMMIT
                os.kill(os.getpid(), signal.SIGKILL)

    store.transaction = dies_before_commit
    writer = IngestWriter(store, Clock())
    writer.start()
    sink = writer.sink_for("front_door")
    sink.emit(DoorCount("front", 2, 0), {"counters": "2,0"})
    assert writer.flush()
    crash[0] = sys.argv[2] == "crash"
    sink.emit(DoorCount("front", 3, 1), {"counters": "5,1"})
    writer.flush(10)
    print("committed")
    """
)


@pytest.mark.parametrize("crash", [True, False])
def test_a_crash_between_emit_and_commit_leaves_neither_the_readings_nor_the_baseline(
    tmp_path: Path, crash: bool
) -> None:
    db = tmp_path / "agent.db"
    run = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, str(db), "crash" if crash else "no-crash"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    store = Store(db)  # recovers the WAL as the restarted agent would
    state = driver_state.load(store.conn(), "front_door", "counters")
    store.close()
    if crash:
        assert run.returncode == -9, run.stderr
        assert (door_totals(db), state) == ((1, 2, 0), "2,0")  # the baseline matches the stored counts
    else:
        assert run.returncode == 0 and "committed" in run.stdout, run.stderr
        assert (door_totals(db), state) == ((2, 5, 1), "5,1")


def test_the_recording_sink_keeps_state_like_the_agent() -> None:
    sink = RecordingSink()
    sink.emit(DoorCount("front", 1, 0), {"counters": "1,0"})
    sink.save_state("front_door", {"counters": "0,0"})
    sink.emit(DoorCount("front", 1, 0), {"counters": "y" * (MAX_STATE_VALUE + 1)})
    assert sink.load_state("front_door", "counters") == "0,0"
    assert len(sink.readings) == 1 and len(sink.refused) == 1
    restarted = RecordingSink(sink.state)  # a restart sees what the previous run committed
    assert restarted.load_state("front_door", "counters") == "0,0" and restarted.readings == []
