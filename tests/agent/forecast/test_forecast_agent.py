"""The running agent's daily forecast job: a failed fit is one reason in /health and a counted metric."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from agent.demo.local_broker import LocalBroker
from agent.forecast import job
from agent.ops.runtime import Agent
from tests.agent.test_health import get
from tests.conftest import ManualClock, make_config


def test_a_failed_daily_fit_shows_in_health_and_metrics_until_one_succeeds(
    tmp_path: Path, broker: LocalBroker, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(tmp_path, broker.port, extra='\n[health]\nlisten = "127.0.0.1:0"\n')
    agent = Agent(config, clock)
    agent.start()
    try:
        assert "forecast" in {j.id for j in agent.scheduler.get_jobs()}
        real = job.fit_command
        monkeypatch.setattr(
            job, "fit_command", lambda *a: [sys.executable, "-c", "import sys; sys.exit('forecast fit failed: boom')"]
        )
        agent._forecast_tick()
        assert agent.health_server is not None
        base = f"http://127.0.0.1:{agent.health_server.port}"
        code, body = get(base + "/health")
        assert code == 503 and "forecast not refreshed: forecast fit failed: boom" in json.loads(body)["reasons"]
        metrics = get(base + "/metrics")[1]
        assert "shopkeeper_forecast_fit_failures_total 1" in metrics
        agent._forecast_tick()  # within the hour: not retried yet
        assert "shopkeeper_forecast_fit_failures_total 1" in get(base + "/metrics")[1]
        monkeypatch.setattr(job, "fit_command", real)
        clock.advance(3601)
        agent._forecast_tick()
        code, body = get(base + "/health")
        assert code == 200, body
        assert agent.store.get_state(job.DAY_STATE) is not None
    finally:
        agent.stop()
