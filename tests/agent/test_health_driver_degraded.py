"""/health takes a driver's own degraded reason (a webhook's dead letters), not only stopped or disconnected."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from agent.ops.health import health_report
from agent.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "shopkeeper.db")


def stub_agent(drivers: dict[str, dict[str, Any]], store: Store) -> Any:
    return SimpleNamespace(
        publisher=SimpleNamespace(connected=True),
        clock=SimpleNamespace(synced=lambda: True),
        store=store,
        ingest=SimpleNamespace(stats=lambda: {"store_error": ""}),
        supervisor=SimpleNamespace(health=lambda: drivers),
        home_assistant=None,
    )


def test_a_driver_degraded_reason_degrades_health_with_that_reason(store: Store) -> None:
    reason = "dead letter: event e1: RetrieveOrder O1: HTTP 401"
    report = health_report(stub_agent({"square_pos": {"running": True, "connected": True, "degraded": reason}}, store))
    assert report["status"] == "degraded" and report["reasons"] == [f"driver square_pos: {reason}"]


def test_an_empty_degraded_reason_is_ok(store: Store) -> None:
    drivers = {"square_pos": {"running": True, "connected": True, "degraded": ""}}
    report = health_report(stub_agent(drivers, store))
    assert report == {"status": "ok", "reasons": [], "drivers": drivers, "outbox_refused": []}
