"""One bad reading never stops ingest: it is refused alone, with its reason; a dead writer is fatal."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.driver_api import Basket, BasketLine, DoorCount
from agent.errors import InternalThreadDied
from agent.ops.runtime import Agent
from agent.pipeline import ingest as ingest_module
from agent.pipeline.ingest import IngestWriter
from agent.store import Store
from tests.conftest import ManualClock


def stored(store: Store, sql: str) -> list[tuple[object, ...]]:
    return store.conn().execute(sql).fetchall()


def test_an_absurd_amount_is_refused_alone_and_door_counts_keep_flowing(
    config: AgentConfig, clock: ManualClock
) -> None:
    store = Store(config.db_path)
    writer = IngestWriter(store, clock)
    writer.start()
    assert writer.submit("front", DoorCount("front", 2, 1))
    absurd = Basket("r-1", (BasketLine("Cake", 1, int(1e30), int(1e30)),), int(1e30))
    assert not writer.submit("till", absurd)
    assert writer.submit("front", DoorCount("front", 3, 0))
    assert writer.submit("till", Basket("r-2", (BasketLine("Bun", 2, 150, 300),), 300))
    assert writer.flush()
    assert stored(store, "SELECT sum(entries) FROM events") == [(5,)]
    assert stored(store, "SELECT source_id FROM baskets") == [("r-2",)]
    (reason,) = writer.stats()["refused"]
    assert reason.startswith("till:total ") and "not an amount in cents" in reason and writer.alive()
    writer.stop()


def test_a_record_sqlite_rejects_is_refused_alone_from_its_batch(config: AgentConfig, clock: ManualClock) -> None:
    """A lone surrogate in a line name passes the checks but cannot be encoded for SQLite."""
    store = Store(config.db_path)
    writer = IngestWriter(store, clock)
    writer.start()
    for i in range(50):  # all in one batch with the bad one in the middle
        writer.submit("front", DoorCount("front", 1, 0))
        if i == 25:
            writer.submit("till", Basket("r-bad", (BasketLine("Cr\udce8me", 1, 300, 300),), 300))
    assert writer.flush()
    assert stored(store, "SELECT count(*), sum(entries) FROM events") == [(50, 50)]
    assert stored(store, "SELECT count(*) FROM baskets") == [(0,)]
    assert any("the store cannot hold it" in r for r in writer.stats()["refused"])
    assert writer.alive()
    writer.stop()


def test_a_full_queue_refuses_with_a_reason_instead_of_hanging(
    config: AgentConfig, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest_module, "QUEUE_WAIT_S", 0.2)
    store = Store(config.db_path)
    writer = IngestWriter(store, clock, queue_max=3)  # not started: nothing drains the queue
    results = [writer.submit("front", DoorCount("front", 1, 0)) for _ in range(5)]
    assert results == [True, True, True, False, False]
    assert writer.flush(timeout=0.2) is False
    assert sum(writer.stats()["refused"].values()) == 2
    writer.stop()  # returns although the queue is full and no thread runs


def test_a_dead_writer_thread_stops_the_agent_with_an_error(
    config: AgentConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def broken(*_args: object) -> None:
        raise RuntimeError("simulated bug in the writer")

    monkeypatch.setattr(ingest_module.raw_events, "insert_door_counts", broken)
    agent = Agent(config)
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            agent.run_forever()
        except BaseException as exc:
            outcome.append(exc)

    monkeypatch.setattr("signal.signal", lambda *_a: None)  # not the main thread
    runner = threading.Thread(target=run)
    runner.start()
    agent.ingest.submit("front", DoorCount("front", 1, 0))
    runner.join(timeout=30)
    assert not runner.is_alive(), "the agent must stop by itself"
    assert len(outcome) == 1 and isinstance(outcome[0], InternalThreadDied)
    assert "ingest-writer" in str(outcome[0]) and "simulated bug" in str(outcome[0])
