"""Rate-limited logging: every refusal is logged with its reason, at most once per interval and cause."""

from __future__ import annotations

import logging

import pytest

from agent.logs import RateLimitedLog

log = logging.getLogger("test.refusals")


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_one_cause_is_logged_once_per_interval_with_the_held_back_count(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeTime()
    refusals = RateLimitedLog(log, interval_s=60, monotonic=clock)
    with caplog.at_level(logging.WARNING, logger="test.refusals"):
        assert refusals.warning("400 malformed", "driver %s: %s", "shop", "total_price 'x' is not a decimal amount")
        clock.now = 30.0
        assert not refusals.warning("400 malformed", "driver %s: %s", "shop", "another reason")
        clock.now = 59.0
        assert not refusals.warning("400 malformed", "driver %s: %s", "shop", "a third reason")
        clock.now = 61.0
        assert refusals.warning("400 malformed", "driver %s: %s", "shop", "later reason")
    assert [r.getMessage() for r in caplog.records] == [
        "driver shop: total_price 'x' is not a decimal amount",
        "driver shop: later reason (and 2 more like it since the last report)",
    ]


def test_each_cause_has_its_own_interval(caplog: pytest.LogCaptureFixture) -> None:
    refusals = RateLimitedLog(log, interval_s=60, monotonic=FakeTime())
    with caplog.at_level(logging.WARNING, logger="test.refusals"):
        assert refusals.warning("401 bad signature", "check the secret")
        assert refusals.warning("dead letter", "event e1: HTTP 404")
    assert len(caplog.records) == 2
