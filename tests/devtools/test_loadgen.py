"""The load generator's command line publishes every synthetic summary and waits for every PUBACK."""

from __future__ import annotations

import pytest

from agent.demo.local_broker import LocalBroker
from devtools.loadgen import main
from tests.mqtt_watch import Subscriber


def test_main_publishes_each_shops_hour_and_exits_0(broker: LocalBroker, capsys: pytest.CaptureFixture[str]) -> None:
    sub = Subscriber(broker.port, "coop/v1/#")
    try:
        code = main(["--port", str(broker.port), "--shops", "2", "--hours", "1", "--categories", "food,other"])
        # Per shop and hour: 2 doors, then baskets per category and "all", then revenue per category.
        expected = 2 * (2 + (2 + 1) + 2)
        sub.wait_for(lambda: len(sub.messages()) >= expected, 10, "every synthetic summary")
    finally:
        sub.close()
    assert code == 0
    assert len(sub.messages()) == expected
    assert {t.split("/")[3] for t, _p, _r in sub.messages()} == {"shop-0000", "shop-0001"}
    assert f"{expected}/{expected} acknowledged" in capsys.readouterr().err
