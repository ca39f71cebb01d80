"""/health takes a driver's own degraded reason (a webhook's dead letters), not only stopped or disconnected."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from agent.ops.health import health_report


def stub_agent(drivers: dict[str, dict[str, Any]]) -> Any:
    return SimpleNamespace(
        publisher=SimpleNamespace(connected=True),
        clock=SimpleNamespace(synced=lambda: True),
        store=SimpleNamespace(get_state=lambda key, default: default),
        supervisor=SimpleNamespace(health=lambda: drivers),
    )


def test_a_driver_degraded_reason_degrades_health_with_that_reason() -> None:
    reason = "dead letter: event e1: RetrieveOrder O1: HTTP 401"
    report = health_report(stub_agent({"square_pos": {"running": True, "connected": True, "degraded": reason}}))
    assert report["status"] == "degraded" and report["reasons"] == [f"driver square_pos: {reason}"]


def test_an_empty_degraded_reason_is_ok() -> None:
    report = health_report(stub_agent({"square_pos": {"running": True, "connected": True, "degraded": ""}}))
    assert report == {"status": "ok", "reasons": [], "drivers": {"square_pos": {"running": True, "connected": True,
                                                                               "degraded": ""}}}  # fmt: skip
